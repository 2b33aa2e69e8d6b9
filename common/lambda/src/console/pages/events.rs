//! Events: the list (filters, cursor pages, live updates), one event's timeline and payload,
//! replay of one, and replay by filter with the count shown before confirming.

use lambda_http::{Body, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::*;

const FILTERS: [&str; 7] = [
    "status",
    "provider",
    "type",
    "object_id",
    "event_id",
    "since",
    "until",
];
const STATUSES: [&str; 5] = [
    "received",
    "completed",
    "skipped_stale",
    "ignored",
    "failed",
];
const PROVIDERS: [&str; 7] = [
    "stripe", "clerk", "whop", "github", "shopify", "slack", "standard",
];

fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status.replace('_', " ")) } }
}

fn filter_form(current: &[(String, String)], action: &str) -> Markup {
    let value = |name: &str| {
        current
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let local = |name: &str| value(name).get(..16).unwrap_or("").to_owned();
    html! {
        form.filters method="get" action=(action) {
            label { "Status " select name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[value("status") == s] { (s) } }
            } }
            label { "Provider " select name="provider" {
                option value="" { "any" }
                @for p in PROVIDERS { option value=(p) selected[value("provider") == p] { (p) } }
            } }
            label { "Type " input name="type" value=(value("type")) maxlength="200" placeholder="invoice.paid"; }
            label { "Object id " input name="object_id" value=(value("object_id")) maxlength="200" placeholder="in_…"; }
            label { "Provider's event id " input name="event_id" value=(value("event_id")) maxlength="200" placeholder="evt_…"; }
            label { "Since " input type="datetime-local" name="since" value=(local("since")); }
            label { "Until " input type="datetime-local" name="until" value=(local("until")); }
            button type="submit" { "Filter" }
        }
    }
}

pub async fn list<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let mut wanted = FILTERS.to_vec();
    wanted.push("cursor");
    let params = api_query(page.query, &wanted);
    let answer = console
        .api(
            page.session,
            "GET",
            &format!("/v1/events?{}", encode(&params)),
            None,
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(n, _)| n != "cursor")
        .cloned()
        .collect();
    let rows = answer
        .json
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = answer.json.get("next_cursor").and_then(Value::as_str);
    let body = html! {
        (filter_form(&filters, "/console/events"))
        div.toolbar {
            label.live { input type="checkbox" id="live"; " Live updates" }
            output id="new-events" aria-live="polite" {}
            @if page.session.has("events:replay") && replayable(&filters) {
                a.button href={ "/console/replay?" (encode(&filters)) } { "Replay all matching…" }
            }
        }
        @if rows.is_empty() {
            p.empty { "No events match." }
        } @else {
            div.scroll { table.events {
                thead { tr { th { "Id" } th { "Received" } th { "Provider" } th { "Type" } th { "Object" } th { "Status" } th { "Replays" } } }
                tbody {
                    @for event in &rows {
                        tr data-id=(int(event, "id")) {
                            td { a href={ "/console/events/" (int(event, "id")) } { (int(event, "id")) } }
                            td { (when(event, "received_at")) }
                            td { (text(event, "provider")) }
                            td { (text(event, "event_type")) }
                            td { (text(event, "object_id")) }
                            td { (status_badge(text(event, "status"))) }
                            td.num { (int(event, "replay_count")) }
                        }
                    }
                }
            } }
        }
        @if let Some(cursor) = next {
            @let next_params: Vec<(String, String)> = filters.iter().cloned().chain([("cursor".to_owned(), cursor.to_owned())]).collect();
            p { a.button rel="next" href={ "/console/events?" (encode(&next_params)) } { "Older events →" } }
        }
    };
    super::page(page.session, "Events", "events", body)
}

pub async fn detail<A: Api>(console: &Console<A>, page: &Page<'_>, id: &str) -> Response<Body> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return error_page(Some(page.session), 404, "not_found", "No such event.");
    }
    let with_payload = page.session.has("payloads:read");
    let path = format!(
        "/v1/events/{id}{}",
        if with_payload { "?include=payload" } else { "" }
    );
    let answer = console.api(page.session, "GET", &path, None).await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let event = &answer.json;
    let replayed = page.query.is_some_and(|q| q.contains("replayed=1"));
    let status = text(event, "status");
    let outcome = match status {
        "completed" => "Processed",
        "skipped_stale" => "Skipped: a newer version was already applied",
        "ignored" => "Ignored: nothing to do for this type",
        "failed" => "Failed: dead-lettered",
        _ => "Waiting to be processed",
    };
    let body = html! {
        @if replayed { p.notice role="status" { "Replay queued: the event will be processed again; its replay count rises when it is." } }
        dl.facts {
            dt { "Provider" } dd { (text(event, "provider")) " · source " code { (text(event, "source_id")) } }
            dt { "Provider's event id" } dd { code { (text(event, "provider_event_id")) } }
            dt { "Type" } dd { (text(event, "event_type")) }
            dt { "Object" } dd { (text(event, "object_type")) " " code { (text(event, "object_id")) } }
            dt { "Status" } dd { (status_badge(status)) }
            dt { "Replays" } dd id="replay-count" { (int(event, "replay_count")) }
        }
        h2 { "Timeline" }
        ol.timeline {
            @if event.get("occurred_at").is_some_and(|v| !v.is_null()) {
                li { (when(event, "occurred_at")) " Occurred at the provider" }
            }
            li { (when(event, "received_at")) " Received at intake, signature verified, queued" }
            @if event.get("processed_at").is_some_and(|v| !v.is_null()) {
                li class={ "s-" (status) } { (when(event, "processed_at")) " " (outcome) }
            } @else {
                li class={ "s-" (status) } { (outcome) }
            }
            @if int(event, "replay_count") > 0 {
                li { "Replayed " (int(event, "replay_count")) " time(s); the last outcome is above" }
            }
        }
        @if page.session.has("events:replay") {
            form method="post" action={ "/console/events/" (id) "/replay" } {
                (csrf(page.session))
                button type="submit" { "Replay" }
            }
        }
        h2 { "Summary fields" }
        pre.json { (pretty(event.get("payload_min").unwrap_or(&Value::Null))) }
        @if with_payload {
            h2 { "Payload (decrypted)" }
            @if let Some(payload) = event.get("payload") {
                pre.json { (pretty(payload)) }
            } @else if let Some(raw) = event.get("payload_base64").and_then(Value::as_str) {
                p { "Not JSON; base64:" } pre.json { (raw) }
            } @else {
                p.empty { "Not available: " (text(event, "payload_unavailable")) }
            }
        } @else {
            p.hint { "The full payload needs a key with the payloads:read scope." }
        }
    };
    super::page(page.session, &format!("Event {id}"), "events", body)
}

pub async fn replay_one<A: Api>(console: &Console<A>, page: &Page<'_>, id: &str) -> Response<Body> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return error_page(Some(page.session), 404, "not_found", "No such event.");
    }
    let answer = console
        .api(
            page.session,
            "POST",
            &format!("/v1/events/{id}/replay"),
            None,
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    redirect(&format!("/console/events/{id}?replayed=1"), None)
}

/// The filters as the replay API's body.
fn replay_body(filters: &[(String, String)], dry_run: bool) -> Value {
    let mut body = filter_body(filters, dry_run);
    body["limit"] = 1000.into();
    body
}

const REPLAY_FILTERS: [&str; 5] = ["status", "provider", "type", "since", "until"];

/// Whether a replay by filter selects exactly these events (it filters by status, provider,
/// type and time only: offering it for an object or event id would replay more than is shown).
fn replayable(filters: &[(String, String)]) -> bool {
    filters
        .iter()
        .all(|(name, _)| REPLAY_FILTERS.contains(&name.as_str()))
}

pub async fn bulk_preview<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let asked = api_query(page.query, &FILTERS);
    if !replayable(&asked) {
        return error_page(
            Some(page.session),
            400,
            "unsupported_filter",
            "Replay by filter takes status, provider, type and time; replay one event from its page.",
        );
    }
    let filters = api_query(page.query, &REPLAY_FILTERS);
    let answer = console
        .api(
            page.session,
            "POST",
            "/v1/events/replay",
            Some(replay_body(&filters, true)),
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let count = int(&answer.json, "selected");
    let body = html! {
        (filter_form(&filters, "/console/replay"))
        @if count == 0 {
            p.empty { "No event matches these filters; nothing to replay." }
        } @else {
            p.confirm id="replay-count" { "This will replay " strong { (count) } " event(s)" @if count >= 1000 { " (at most 1000 per replay, oldest first)" } "." }
            form method="post" action="/console/replay" {
                (csrf(page.session))
                @for (name, value) in &filters { input type="hidden" name=(name) value=(value); }
                button.danger type="submit" { "Replay " (count) " event(s)" }
                " " a href={ "/console/events?" (encode(&filters)) } { "Cancel" }
            }
        }
    };
    super::page(page.session, "Replay events", "events", body)
}

pub async fn bulk_replay<A: Api>(
    console: &Console<A>,
    page: &Page<'_>,
    form: &Form,
) -> Response<Body> {
    let filters = form_filters(form, &REPLAY_FILTERS);
    let answer = console
        .api(
            page.session,
            "POST",
            "/v1/events/replay",
            Some(replay_body(&filters, false)),
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let body = html! {
        p.notice role="status" { (int(&answer.json, "enqueued")) " event(s) sent to be processed again." }
        p { a href={ "/console/events?" (encode(&filters)) } { "Back to the events" } }
    };
    super::page(page.session, "Replay events", "events", body)
}
