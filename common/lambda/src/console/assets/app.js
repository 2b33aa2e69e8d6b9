// The console's only script. Live updates on the events list: while the box is ticked, the
// page is fetched again every 5 s and the number of newer events is announced in a space kept
// for it; the list itself never moves under the reader. Nothing else needs JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  const out = document.getElementById("new-events");
  if (!live || !out) return;
  const newest = () => {
    const row = document.querySelector("table.events tbody tr[data-id]");
    return row ? Number(row.dataset.id) : 0;
  };
  let timer = null;
  const poll = async () => {
    try {
      const answer = await fetch(location.href, { credentials: "same-origin" });
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const top = newest();
      const fresh = [...page.querySelectorAll("table.events tbody tr[data-id]")]
        .filter((row) => Number(row.dataset.id) > top).length;
      out.textContent = "";
      if (fresh > 0) {
        const show = document.createElement("a");
        show.href = location.href;
        show.className = "button";
        show.textContent = fresh + " new event" + (fresh === 1 ? "" : "s") + " - show";
        out.appendChild(show);
      }
    } catch (_) { /* offline for a moment: try again next time */ }
  };
  live.addEventListener("change", () => {
    if (live.checked) { poll(); timer = setInterval(poll, 5000); }
    else { clearInterval(timer); out.textContent = ""; }
  });
});
