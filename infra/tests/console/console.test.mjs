// The console end to end in headless Chromium (Debian's, driven by Playwright), against a local
// stack that infra/tests/it/console.rs started and seeded. Run by that test; every input comes
// from its environment:
//   CONSOLE_URL      the stack's gateway (the console is at /console)
//   KEY_A, KEY_B     admin keys of tenants A (demo_company) and B; KEY_OP an operator key
//   B_EVENT_ID       an event of B's; B_MARKER a text only B's data holds
//   EXPIRED_COOKIE, FOREIGN_COOKIE  sessions sealed expired / with another key ring
//   INLET_BIN, SOURCES_TABLE, SCRIPT_PAYLOAD  to send a signed event with `inlet send`
//   PLAYWRIGHT_DIR   node_modules holding playwright-core; SHOTS where screenshots go
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const { chromium } = createRequire(env("PLAYWRIGHT_DIR") + "/")("playwright-core");
const BASE = env("CONSOLE_URL");
const SHOTS = env("SHOTS");
mkdirSync(SHOTS, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

/** A fresh browser (no cookies), with every request to another host recorded. */
async function fresh() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const outside = [];
  page.on("request", (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) outside.push(r.url()); });
  const alerts = [];
  page.on("dialog", (d) => { alerts.push(d.message()); d.dismiss(); });
  return { context, page, outside, alerts };
}

async function signIn(page, key) {
  await page.goto(`${BASE}/console/sign-in`);
  await page.getByLabel("Tenant API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/console\/events/);
}

/** The tenant API, as a client calls it. */
async function api(key, method, path, body) {
  const answer = await fetch(`${BASE}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: answer.status, json: await answer.json() };
}

/** Reloads `url` until `check(page)` holds (events are processed asynchronously). */
async function until(page, url, check, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(url);
    if (await check(page)) return;
    if (Date.now() > end) throw new Error(`not seen within ${seconds} s at ${url}:\n${(await page.content()).slice(0, 3000)}`);
    await page.waitForTimeout(500);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** A POST from the signed-in page itself (same origin, with its cookie). */
async function postFromPage(page, path, fields) {
  return page.evaluate(async ([path, fields]) => {
    const answer = await fetch(path, { method: "POST", body: new URLSearchParams(fields), redirect: "manual" });
    return { status: answer.status, text: await answer.text() };
  }, [path, fields]);
}

test("a signed-out browser, and one with a tampered, expired or foreign session, is sent to sign-in", async () => {
  const { context, page } = await fresh();
  await page.goto(`${BASE}/console/events`);
  assert.match(page.url(), /\/console\/sign-in$/);
  await shot(page, "sign-in");
  const url = new URL(BASE);
  for (const value of [env("EXPIRED_COOKIE"), env("FOREIGN_COOKIE"), "not-a-session", env("EXPIRED_COOKIE").slice(0, -4) + "AAAA"]) {
    await context.clearCookies();
    await context.addCookies([{ name: "inlet_session", value, domain: url.hostname, path: "/console", httpOnly: true, secure: true, sameSite: "Strict" }]);
    await page.goto(`${BASE}/console/events`);
    assert.match(page.url(), /\/console\/sign-in$/, `cookie ${value.slice(0, 12)}…`);
  }
  // A wrong key is refused on the sign-in page, naming why.
  await page.getByLabel("Tenant API key").fill("ink_0000000000000000_" + "0".repeat(64));
  await page.getByRole("button", { name: "Sign in" }).click();
  await assert.doesNotReject(page.getByRole("alert").filter({ hasText: "invalid_key" }).waitFor());
  await context.close();
});

test("an operator sees a poison event under Failures with its code, and a redrive after the fix empties it", async () => {
  const { context, page, outside } = await fresh();
  await signIn(page, env("KEY_OP"));
  await until(page, `${BASE}/console/failures`, async (p) => (await p.locator('tr[data-code="unknown_tenant"]').count()) > 0);
  assert.match(await page.locator('tr[data-code="unknown_tenant"]').first().innerText(), /whop/);
  await shot(page, "failures");
  await page.locator('tr[data-code="unknown_tenant"] a', { hasText: "Redrive" }).first().click();
  await assert.doesNotReject(page.locator("#redrive-count", { hasText: "move 1 dead letter" }).waitFor());
  await page.getByRole("button", { name: /Redrive 1 dead letter/ }).click();
  await assert.doesNotReject(page.getByRole("status").filter({ hasText: "1 dead letter(s) moved" }).waitFor());
  await until(page, `${BASE}/console/failures`, async (p) => (await p.locator("#no-failures").count()) === 1);
  await page.goto(`${BASE}/console/health`);
  await assert.doesNotReject(page.getByRole("heading", { name: "Objectives (last 10 minutes)" }).waitFor());
  // The fixture breaches processing p95 and the error rate: two objectives, so degraded.
  assert.match(await page.locator("#degraded").innerText(), /Degraded: two or more objectives/);
  assert.equal(await page.locator("table.slos .s-failed").count(), 2);
  await shot(page, "health");
  assert.deepEqual(outside, []);
  await context.close();
});

test("an event sent through intake appears, its timeline shows, Replay counts, and a bulk replay shows its count first", async () => {
  const { context, page, outside, alerts } = await fresh();
  await signIn(page, env("KEY_A"));
  execFileSync(env("INLET_BIN"), ["send", "stripe", "--source", "demo_stripe", "--file", env("SCRIPT_PAYLOAD"),
    "--url", BASE, "--table", env("SOURCES_TABLE")], { stdio: "pipe" });
  const row = () => page.locator("table.events tbody tr", { hasText: "invoice.payment_failed" }).first();
  await until(page, `${BASE}/console/events?provider=stripe`, async (p) =>
    (await p.locator("table.events tbody tr", { hasText: "invoice.payment_failed" }).filter({ hasText: "completed" }).count()) > 0);
  await row().locator("a").first().click();
  await page.waitForURL(/\/console\/events\/\d+$/);
  const timeline = await page.locator("ol.timeline").innerText();
  assert.match(timeline, /Received at intake/);
  assert.match(timeline, /Processed/);
  // The payload holds <script> and an <img onerror>: shown as text, never run.
  const payload = await page.locator("pre.json").last().innerText();
  assert.match(payload, /<script>window\.__pwned = 1<\/script>/);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.locator("main script, main img").count(), 0);
  const before = Number(await page.locator("#replay-count").innerText());
  await shot(page, "event-detail");
  await page.getByRole("button", { name: "Replay" }).click();
  await assert.doesNotReject(page.getByRole("status").filter({ hasText: "Replay queued" }).waitFor());
  // The consumer counts the replay when it processes it again.
  await until(page, page.url(), async (p) => Number(await p.locator("#replay-count").innerText()) === before + 1);

  // Bulk replay: the count is the API's dry run, shown before anything is sent.
  const dry = await api(env("KEY_A"), "POST", "/v1/events/replay", { provider: "stripe", dry_run: true, limit: 1000 });
  assert.equal(dry.status, 202);
  await page.goto(`${BASE}/console/events?provider=stripe`);
  await page.getByRole("link", { name: "Replay all matching…" }).click();
  const confirm = await page.locator("#replay-count").innerText();
  assert.match(confirm, new RegExp(`This will replay ${dry.json.selected} event`));
  await shot(page, "bulk-replay");
  await page.getByRole("button", { name: `Replay ${dry.json.selected} event(s)` }).click();
  await assert.doesNotReject(page.getByRole("status").filter({ hasText: `${dry.json.selected} event(s) sent` }).waitFor());
  await page.goto(`${BASE}/console/events`);
  await shot(page, "events");
  // The provider's event id finds the one event; replay by filter is not offered for it (it
  // would replay more than the page shows), and a hand-made replay URL with it is refused.
  await page.goto(`${BASE}/console/events?event_id=evt_console_script_1`);
  assert.equal(await page.locator("table.events tbody tr[data-id]").count(), 1);
  assert.equal(await page.getByRole("link", { name: "Replay all matching…" }).count(), 0);
  const narrowed = await page.goto(`${BASE}/console/replay?event_id=evt_console_script_1`);
  assert.equal(narrowed.status(), 400);
  assert.match(await page.getByRole("alert").innerText(), /unsupported_filter/);

  // Script in a filter field is shown back escaped; nothing runs.
  await page.goto(`${BASE}/console/events?type=${encodeURIComponent('<script>window.__pwned=2</script>"><img src=x onerror=alert(1)>')}`);
  assert.equal(await page.locator('input[name="type"]').inputValue(), '<script>window.__pwned=2</script>"><img src=x onerror=alert(1)>');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  // A filter value too large is a clear error page, not a crash.
  const huge = await page.goto(`${BASE}/console/events?type=${"x".repeat(5000)}`);
  assert.equal(huge.status(), 400);
  assert.match(await page.getByRole("alert").innerText(), /invalid_query/);
  assert.deepEqual(alerts, []);
  assert.deepEqual(outside, []);
  await context.close();
});

test("tenant A sees none of B's events, sources or cases on any view or typed URL, and a POST without the CSRF token changes nothing", async () => {
  const { context, page } = await fresh();
  await signIn(page, env("KEY_A"));
  const marker = env("B_MARKER");
  for (const view of ["events", "failures", "sources", "recovery", "ab", "events?provider=stripe",
                      `events?object_id=${marker}`, `events/${env("B_EVENT_ID")}`, "health"]) {
    const answer = await page.goto(`${BASE}/console/${view}`);
    // The page without the filter form and the toolbar's links, which show back what was typed
    // (the marker included); everything else is data.
    const shown = await page.evaluate(() => {
      const main = document.querySelector("main").cloneNode(true);
      main.querySelectorAll("form.filters, .toolbar").forEach((f) => f.remove());
      return main.innerHTML;
    });
    assert.ok(!shown.includes(marker), `${view} shows B's data`);
    if (view.startsWith("events/")) assert.equal(answer.status(), 404, view);
    if (view === "health") assert.equal(answer.status(), 403, "health needs the operator scope");
  }
  const b = () => api(env("KEY_B"), "GET", `/v1/events/${env("B_EVENT_ID")}`);
  const replaysBefore = (await b()).json.replay_count;
  await page.goto(`${BASE}/console/events`);
  const csrf = await page.locator('input[name="csrf"]').first().inputValue();
  // B's event through A's session: the API says it does not exist.
  assert.equal((await postFromPage(page, `/console/events/${env("B_EVENT_ID")}/replay`, { csrf })).status, 404);
  const mine = await page.locator("table.events tbody tr[data-id]").first().getAttribute("data-id");
  const mineBefore = (await api(env("KEY_A"), "GET", `/v1/events/${mine}`)).json.replay_count;
  for (const fields of [{}, { csrf: "0".repeat(32) }, { csrf: csrf.slice(1) }]) {
    const answer = await postFromPage(page, `/console/events/${mine}/replay`, fields);
    assert.equal(answer.status, 403, JSON.stringify(fields));
    assert.match(answer.text, /csrf_mismatch/);
  }
  assert.equal((await api(env("KEY_A"), "GET", `/v1/events/${mine}`)).json.replay_count, mineBefore);
  assert.equal((await b()).json.replay_count, replaysBefore);
  // Signing out ends the session: the same browser is sent to sign-in.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto(`${BASE}/console/events`);
  assert.match(page.url(), /\/console\/sign-in$/);
  await context.close();
});

test("the A/B view's figures equal the API's for the fixture", async () => {
  const { context, page } = await fresh();
  await signIn(page, env("KEY_A"));
  const report = (await api(env("KEY_A"), "GET", "/v1/reports/ab")).json;
  assert.ok(report.variants.length >= 2);
  await page.goto(`${BASE}/console/ab`);
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  for (const v of report.variants) {
    const row = page.locator(`tr[data-variant="${v.variant_id}"]`);
    const cell = (field) => row.locator(`td[data-field="${field}"]`).innerText();
    assert.equal(await cell("sends"), String(v.sends));
    assert.equal(await cell("clicks"), String(v.clicks));
    assert.equal(await cell("ctr"), pct(v.ctr));
    assert.equal(await cell("conversions"), String(v.conversions));
    assert.equal(await cell("conversion_rate"), pct(v.conversion_rate));
    assert.equal(await cell("revenue_recovered"), String(v.revenue_recovered));
  }
  const best = report.variants.find((v) => v.variant_id === report.best_variant_id);
  assert.ok(best, "the fixture has a best variant");
  assert.match(await page.locator("#best-variant").innerText(), new RegExp(`Best variant: ${best.name}`));
  assert.equal(report.allocation, "weighted");
  // The chart over time: one line per variant, over the fixture's days.
  assert.ok(report.daily.length >= 2, "the fixture spans several days");
  assert.equal(await page.locator("figure.chart polyline.series").count(), report.variants.length);
  assert.match(await page.locator("#allocation").innerText(), /by weight: Friendly 1, Urgent 1\./);
  await shot(page, "ab");
  await page.goto(`${BASE}/console/sources`);
  await shot(page, "sources");
  await page.goto(`${BASE}/console/recovery`);
  await page.locator("table.cases details summary").first().click();
  assert.match(await page.locator("table.cases ol.timeline").first().innerText(), /Reminder sent by email, variant (Friendly|Urgent)/);
  await shot(page, "recovery");
  // Readable on a phone: no view is wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const view of ["events", "ab", "recovery"]) {
    await page.goto(`${BASE}/console/${view}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${view} is ${wide}px wide on a phone`);
  }
  await shot(page, "events-phone");
  await context.close();
});

test("a tenant rotates its source's secret, shown once, and disables a source; another tenant can do neither", async () => {
  const { context, page } = await fresh();
  await signIn(page, env("KEY_A"));
  // B's admin key cannot touch A's sources: they are not B's.
  for (const action of ["rotate", "disable"]) {
    const answer = await api(env("KEY_B"), "POST", `/v1/sources/demo_stripe/${action}`, action === "rotate" ? {} : undefined);
    assert.equal(answer.status, 404, `B ${action}s A's source`);
  }
  await page.goto(`${BASE}/console/sources`);
  await page.locator("table.sources tr", { hasText: "demo_stripe" }).getByRole("link", { name: "Rotate secret…" }).click();
  await page.getByRole("button", { name: "Rotate the secret" }).click();
  const secret = (await page.locator("#new-secret").innerText()).trim();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
  await shot(page, "source-rotated");
  // Shown once: nowhere on the sources page afterwards.
  await page.goto(`${BASE}/console/sources`);
  assert.ok(!(await page.content()).includes(secret));
  // The table now holds the new secret and the old one until the overlap ends; the intake picks
  // both up at its next source-cache refresh (30 s), so the provider never sees a refusal.
  const show = () => execFileSync(env("INLET_BIN"), ["sources", "show", "demo_stripe", "--table", env("SOURCES_TABLE")]).toString();
  assert.match(show(), /secret 1 +active until \d{4}-/);
  assert.match(show(), /secret 2 +active\n/);
  // Disable: the source's URL answers 404 once the intake's cache refreshes.
  await page.locator("table.sources tr", { hasText: "demo_stripe" }).getByRole("link", { name: "Disable…" }).click();
  await page.getByRole("button", { name: "Disable the source" }).click();
  await assert.doesNotReject(page.getByRole("status").filter({ hasText: "is disabled" }).waitFor());
  assert.match(show(), /enabled +false/);
  await context.close();
});
