//! Failures (dead letters by cause; redrive with a preview for operators), sources, recovery
//! cases, the A/B report with its chart, and the platform's health (operators).

use lambda_http::{Body, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::*;

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn rows(answer: &Answer, name: &str) -> Vec<Value> {
    answer
        .json
        .get(name)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub async fn failures<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let operator = page.session.has("operator");
    let path = if operator {
        "/v1/ops/dead-letters"
    } else {
        "/v1/dead-letters"
    };
    let answer = console.api(page.session, "GET", path, None).await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let groups = rows(&answer, "data");
    let body = html! {
        p.hint {
            @if operator { "Every tenant's dead letters, by cause. Fix the cause, then redrive." }
            @else { "Your events that could not be processed, by cause (docs/DEAD_LETTERS.md explains each code)." }
        }
        @if groups.is_empty() {
            p.empty id="no-failures" { "No dead letters." }
        } @else {
            div.scroll { table.failures {
                thead { tr {
                    th { "Queue" } th { "Code" } th { "Class" } th { "Provider" }
                    @if operator { th { "Company" } }
                    th { "Count" } th { "Oldest" }
                    @if operator { th { span.sr { "Action" } } }
                } }
                tbody { @for group in &groups {
                    tr data-code=(text(group, "code")) {
                        td { (text(group, "queue")) }
                        td { code { (text(group, "code")) } }
                        td { (text(group, "class")) }
                        td { (text(group, "provider")) }
                        @if operator { td { (text(group, "company")) } }
                        td.num { (int(group, "count")) }
                        td { (age(int(group, "oldest_age_seconds"))) }
                        @if operator {
                            @let filter = [("queue", text(group, "queue")), ("code", text(group, "code")), ("provider", text(group, "provider")), ("company", text(group, "company"))];
                            td { a.button href={ "/console/failures/redrive?" (encode(&filter.map(|(n, v)| (n.to_owned(), v.to_owned())))) } { "Redrive…" } }
                        }
                    }
                } }
            } }
        }
        p.hint { "Intake refusals (bad signatures, unknown sources) are answered to the sender and counted in the intake metrics; they are not listed here." }
    };
    super::page(page.session, "Failures", "failures", body)
}

const REDRIVE_FIELDS: [&str; 4] = ["queue", "code", "provider", "company"];

pub async fn redrive_preview<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let filters = api_query(page.query, &REDRIVE_FIELDS);
    let answer = console
        .api(
            page.session,
            "POST",
            "/v1/ops/dead-letters/redrive",
            Some(filter_body(&filters, true)),
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let letters = rows(&answer, "letters");
    let body = html! {
        p.confirm id="redrive-count" { "This will move " strong { (letters.len()) } " dead letter(s) back to the queue each came from." }
        @if !letters.is_empty() {
            ul.letters { @for letter in letters.iter().take(50) {
                li { code { (text(letter, "code")) } " · " (text(letter, "provider")) " · " (text(letter, "company")) " · " code { (text(letter, "message_id")) } }
            } }
            form method="post" action="/console/failures/redrive" {
                (csrf(page.session))
                @for (name, value) in &filters { input type="hidden" name=(name) value=(value); }
                button.danger type="submit" { "Redrive " (letters.len()) " dead letter(s)" }
                " " a href="/console/failures" { "Cancel" }
            }
        }
    };
    super::page(page.session, "Redrive dead letters", "failures", body)
}

pub async fn redrive<A: Api>(console: &Console<A>, page: &Page<'_>, form: &Form) -> Response<Body> {
    let filters = form_filters(form, &REDRIVE_FIELDS);
    let answer = console
        .api(
            page.session,
            "POST",
            "/v1/ops/dead-letters/redrive",
            Some(filter_body(&filters, false)),
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let body = html! {
        p.notice role="status" { (int(&answer.json, "count")) " dead letter(s) moved back to be processed." }
        p { a href="/console/failures" { "Back to failures" } }
    };
    super::page(page.session, "Redrive dead letters", "failures", body)
}

pub async fn sources<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let answer = console.api(page.session, "GET", "/v1/sources", None).await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let sources = rows(&answer, "data");
    let admin = page.session.has("admin");
    let body = html! {
        @if sources.is_empty() {
            p.empty { "No source has delivered an event yet." }
        } @else {
            div.scroll { table.sources {
                thead { tr { th { "Source" } th { "Provider" } th { "Webhook URL path" } th { "Events" } th { "Last event" } th { "Data" } @if admin { th { span.sr { "Actions" } } } } }
                tbody { @for source in &sources {
                    tr {
                        td { code { (text(source, "source_id")) } }
                        td { (text(source, "provider")) }
                        td { code { "/webhooks/" (text(source, "provider")) "/" (text(source, "source_id")) } }
                        td.num { (int(source, "events")) }
                        td { (when(source, "last_received_at")) }
                        td { @if source.get("silent_alerted_at").is_some_and(|v| !v.is_null()) {
                            span.badge.s-failed title="The watchdog found it silent for longer than its usual gap" { "no data since " (when(source, "last_received_at")) }
                        } @else { span.badge.s-completed { "receiving" } } }
                        @if admin {
                            td.actions {
                                a.button href={ "/console/sources/" (text(source, "source_id")) "/rotate" } { "Rotate secret…" }
                                " "
                                a.button href={ "/console/sources/" (text(source, "source_id")) "/disable" } { "Disable…" }
                            }
                        }
                    }
                } }
            } }
        }
        p.hint { "Sources that have delivered events. Rotating a secret or disabling a source needs an admin key; sources shared by several tenants are the operator's (" code { "inlet sources" } ")." }
    };
    super::page(page.session, "Sources", "sources", body)
}

/// Asks before a source action: what it does, then a button.
pub fn source_confirm(page: &Page<'_>, id: &str, action: &str) -> Response<Body> {
    let (title, what, button) = if action == "rotate" {
        (
            "Rotate a signing secret",
            "A new signing secret is made and shown once. The current one keeps verifying for 24 hours, while you give the new one to the provider.",
            "Rotate the secret",
        )
    } else {
        (
            "Disable a source",
            "The source's URL will answer 404 (within 30 s: the intake caches sources) and its webhooks will no longer be accepted. An operator can enable it again.",
            "Disable the source",
        )
    };
    let body = html! {
        p.confirm { "Source " code { (id) } ": " (what) }
        form method="post" action={ "/console/sources/" (id) "/" (action) } {
            (csrf(page.session))
            button.danger type="submit" { (button) }
            " " a href="/console/sources" { "Cancel" }
        }
    };
    super::page(page.session, title, "sources", body)
}

pub async fn source_action<A: Api>(
    console: &Console<A>,
    page: &Page<'_>,
    id: &str,
    action: &str,
) -> Response<Body> {
    let body = (action == "rotate").then(|| json!({}));
    let answer = console
        .api(
            page.session,
            "POST",
            &format!("/v1/sources/{id}/{action}"),
            body,
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let body = html! {
        @if action == "rotate" {
            p.notice role="status" { "New signing secret for " code { (id) } ", shown once: give it to the provider now." }
            pre.secret id="new-secret" { (text(&answer.json, "secret")) }
            p { "The previous secret verifies until " (when(&answer.json, "previous_valid_until")) " (UTC)." }
        } @else {
            p.notice role="status" { "Source " code { (id) } " is disabled: its URL answers 404 within 30 s." }
        }
        p { a href="/console/sources" { "Back to sources" } }
    };
    super::page(page.session, "Sources", "sources", body)
}

pub async fn recovery<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let params = api_query(page.query, &["status", "cursor"]);
    let answer = console
        .api(
            page.session,
            "GET",
            &format!("/v1/recovery/cases?{}", encode(&params)),
            None,
        )
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let cases = rows(&answer, "data");
    let totals = rows(&answer, "totals");
    let status = params
        .iter()
        .find(|(n, _)| n == "status")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let body = html! {
        @if !totals.is_empty() {
            div.cards { @for total in &totals {
                div class={ "card s-" (text(total, "status")) } {
                    span.label { (text(total, "status")) " (" (text(total, "currency")) ")" }
                    span.figure { (int(total, "cases")) " cases" }
                    span.sub { (money(int(total, "amount"), text(total, "currency"))) }
                }
            } }
        }
        form.filters method="get" action="/console/recovery" {
            label { "Status " select name="status" {
                option value="" { "any" }
                @for s in ["open", "recovered", "lost"] { option value=(s) selected[status == s] { (s) } }
            } }
            button type="submit" { "Filter" }
        }
        @if cases.is_empty() { p.empty { "No recovery cases." } } @else {
            div.scroll { table.cases {
                thead { tr { th { "Case" } th { "Opened" } th { "Provider" } th { "At risk" } th { "Status" } th { "Reminders" } } }
                tbody { @for case in &cases {
                    tr {
                        td { (int(case, "id")) }
                        td { (when(case, "opened_at")) }
                        td { (text(case, "provider")) }
                        td.num { (money(int(case, "amount_at_risk"), text(case, "currency"))) }
                        td { span class={ "badge s-" (text(case, "status")) } { (text(case, "status")) } }
                        td { details {
                            summary { (int(case, "reminders_sent")) " sent" }
                            ol.timeline {
                                li { (when(case, "opened_at")) " Payment failed: case opened" }
                                @for reminder in case.get("reminders").and_then(Value::as_array).into_iter().flatten() {
                                    li class={ "s-" (text(reminder, "status")) } {
                                        (when(reminder, "at")) " Reminder " (text(reminder, "status"))
                                        @if !text(reminder, "variant").is_empty() { " by " (text(reminder, "channel")) ", variant " strong { (text(reminder, "variant")) } }
                                    }
                                }
                                @if case.get("closed_at").is_some_and(|v| !v.is_null()) {
                                    li class={ "s-" (text(case, "status")) } { (when(case, "closed_at")) " Closed: " (text(case, "status")) }
                                }
                            }
                        } }
                    }
                } }
            } }
        }
        @if let Some(cursor) = answer.json.get("next_cursor").and_then(Value::as_str) {
            @let next = [("status".to_owned(), status.to_owned()), ("cursor".to_owned(), cursor.to_owned())];
            p { a.button rel="next" href={ "/console/recovery?" (encode(&next)) } { "Older cases →" } }
        }
    };
    super::page(page.session, "Recovery", "recovery", body)
}

/// Horizontal bars, one per variant, for one ratio (SVG drawn here, no script).
fn bar_chart(title: &str, variants: &[Value], field: &str) -> Markup {
    let max = variants
        .iter()
        .filter_map(|v| v.get(field).and_then(Value::as_f64))
        .fold(0.0_f64, f64::max)
        .max(0.0001);
    let height = 28 * variants.len() + 10;
    html! {
        figure.chart {
            figcaption { (title) }
            svg role="img" aria-label=(title) viewBox={ "0 0 400 " (height) } preserveAspectRatio="xMinYMin meet" width="400" height=(height) {
                @for (i, variant) in variants.iter().enumerate() {
                    @let value = variant.get(field).and_then(Value::as_f64).unwrap_or(0.0);
                    @let y = 5 + i * 28;
                    text x="0" y=(y + 16) { (text(variant, "name")) }
                    rect x="140" y=(y) width=(format!("{:.1}", 200.0 * value / max)) height="20" class="bar" {}
                    text x=(format!("{:.1}", 146.0 + 200.0 * value / max)) y=(y + 16) { (percent(value)) }
                }
            }
        }
    }
}

/// Each variant's cumulative conversion rate, day by day over the report's days (SVG).
fn rate_over_time(variants: &[Value], daily: &[Value]) -> Markup {
    let mut days: Vec<&str> = daily.iter().map(|d| text(d, "day")).collect();
    days.dedup();
    if days.is_empty() {
        return html! { p.empty { "No sends in the last 30 days." } };
    }
    let series: Vec<(String, Vec<f64>)> = variants
        .iter()
        .map(|v| {
            let id = int(v, "variant_id");
            let (mut sends, mut conversions) = (0, 0);
            let points = days
                .iter()
                .map(|day| {
                    for d in daily
                        .iter()
                        .filter(|d| text(d, "day") == *day && int(d, "variant_id") == id)
                    {
                        sends += int(d, "sends");
                        conversions += int(d, "conversions");
                    }
                    if sends > 0 {
                        conversions as f64 / sends as f64
                    } else {
                        0.0
                    }
                })
                .collect();
            (text(v, "name").to_owned(), points)
        })
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .fold(0.0001_f64, f64::max);
    let (width, height) = (400.0, 160.0);
    let x = |i: usize| {
        if days.len() > 1 {
            40.0 + (width - 50.0) * i as f64 / (days.len() - 1) as f64
        } else {
            40.0
        }
    };
    let y = |v: f64| 10.0 + (height - 30.0) * (1.0 - v / max);
    html! {
        figure.chart {
            figcaption { "Cumulative conversion rate by day (UTC), last 30 days" }
            svg role="img" aria-label="Cumulative conversion rate by day" viewBox={ "0 0 " (width) " " (height) } preserveAspectRatio="xMinYMin meet" width=(width * 1.5) height=(height * 1.5) {
                line.axis x1="40" y1=(y(0.0)) x2=(width - 10.0) y2=(y(0.0)) {}
                text x="0" y=(y(max) + 4.0) { (percent(max)) }
                text x="0" y=(y(0.0) + 4.0) { "0 %" }
                text x="40" y=(height - 4.0) { (days[0]) }
                text x=(width - 80.0) y=(height - 4.0) { (days[days.len() - 1]) }
                @for (n, (_, points)) in series.iter().enumerate() {
                    polyline class={ "series s" (n % 4) } points=(points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ")) {}
                }
            }
            p.legend { @for (n, (name, _)) in series.iter().enumerate() { span class={ "key s" (n % 4) } { (name) } " " } }
        }
    }
}

pub async fn ab<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let answer = console
        .api(page.session, "GET", "/v1/reports/ab", None)
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let variants = rows(&answer, "variants");
    let best = answer.json.get("best_variant_id").and_then(Value::as_i64);
    let body = html! {
        @if variants.is_empty() { p.empty { "No reminder variants yet." } } @else {
            p.best id="best-variant" {
                @match best.and_then(|b| variants.iter().find(|v| int(v, "variant_id") == b)) {
                    Some(v) => { "Best variant: " strong { (text(v, "name")) } " (highest conversion rate among those sent at least " (int(&answer.json, "min_sends")) " times)." },
                    None => { "No best variant yet: none has been sent " (int(&answer.json, "min_sends")) " times." },
                }
            }
            div.scroll { table.ab {
                thead { tr { th { "Variant" } th { "Channel" } th { "Active" } th { "Sends" } th { "Clicks" } th { "CTR" } th { "Conversions" } th { "Conversion rate" } th { "Revenue recovered" } } }
                tbody { @for v in &variants {
                    tr data-variant=(int(v, "variant_id")) class=[(best == Some(int(v, "variant_id"))).then_some("best")] {
                        td { (text(v, "name")) }
                        td { (text(v, "channel")) }
                        td { @if v.get("active").and_then(Value::as_bool).unwrap_or(false) { "yes" } @else { "no" } }
                        td.num data-field="sends" { (int(v, "sends")) }
                        td.num data-field="clicks" { (int(v, "clicks")) }
                        td.num data-field="ctr" { (percent(v.get("ctr").and_then(Value::as_f64).unwrap_or(0.0))) }
                        td.num data-field="conversions" { (int(v, "conversions")) }
                        td.num data-field="conversion_rate" { (percent(v.get("conversion_rate").and_then(Value::as_f64).unwrap_or(0.0))) }
                        td.num data-field="revenue_recovered" { (int(v, "revenue_recovered")) }
                    }
                } }
            } }
            div.charts {
                (bar_chart("Conversion rate by variant", &variants, "conversion_rate"))
                (bar_chart("Click-through rate by variant", &variants, "ctr"))
            }
            (rate_over_time(&variants, &rows(&answer, "daily")))
            p.hint id="allocation" {
                @if text(&answer.json, "allocation") == "thompson" {
                    "New reminders choose a variant by Thompson sampling on the active variants' conversions."
                } @else {
                    "New reminders choose a variant by weight: "
                    @for (i, v) in variants.iter().filter(|v| v.get("active").and_then(Value::as_bool).unwrap_or(false)).enumerate() {
                        @if i > 0 { ", " }
                        (text(v, "name")) " " (format!("{}", v.get("weight").and_then(Value::as_f64).unwrap_or(0.0)))
                    }
                    "."
                }
                " Revenue is in the cases' minor currency unit."
            }
        }
    };
    super::page(page.session, "A/B", "ab", body)
}

pub async fn health<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let answer = console
        .api(page.session, "GET", "/v1/ops/health", None)
        .await;
    if !answer.ok() {
        return api_problem(page.session, &answer);
    }
    let health = &answer.json;
    let window = |name: &str| health.get(name).cloned().unwrap_or(Value::Null);
    let (hour, recent) = (window("last_hour"), window("last_10_minutes"));
    let depth = |list: &str| -> i64 { rows(&answer, list).iter().map(|q| int(q, "depth")).sum() };
    let p95 = |w: &Value| {
        w.get("p95_processing_ms")
            .and_then(Value::as_f64)
            .map(|v| format!("{v:.0} ms"))
            .unwrap_or_else(|| "–".into())
    };
    let rate = |w: &Value| percent(w.get("error_rate").and_then(Value::as_f64).unwrap_or(0.0));
    let body = html! {
        @if health.get("degraded").and_then(Value::as_bool).unwrap_or(false) {
            p.banner role="alert" id="degraded" { "Degraded: two or more objectives are breached over the last 10 minutes." }
        }
        div.cards {
            div.card { span.label { "Queue depth" } span.figure { (depth("queues")) } span.sub { "oldest waiting " (format!("{:.0} s", health.get("oldest_waiting_seconds").and_then(Value::as_f64).unwrap_or(0.0))) } }
            div.card { span.label { "Error rate (1 h)" } span.figure { (rate(&hour)) } span.sub { (int(&hour, "failed")) " of " (int(&hour, "processed")) " processed" } }
            div.card { span.label { "Processing p95 (1 h)" } span.figure { (p95(&hour)) } span.sub { "10 min: " (p95(&recent)) } }
            div.card { span.label { "Dead letters" } span.figure { (depth("dead_letter_queues")) } span.sub { a href="/console/failures" { "see failures" } } }
        }
        h2 { "Objectives (last 10 minutes)" }
        table.slos {
            thead { tr { th { "Objective" } th { "Now" } th { "State" } } }
            tbody { @for slo in rows(&answer, "slos") {
                tr { td { (text(&slo, "objective")) } td.num { (format!("{:.3}", slo.get("value").and_then(Value::as_f64).unwrap_or(0.0))) }
                     td { @if slo.get("breached").and_then(Value::as_bool).unwrap_or(false) { span.badge.s-failed { "breached" } } @else { span.badge.s-completed { "met" } } } }
            } }
        }
    };
    super::page(page.session, "Health", "health", body)
}
