//! The console's pages: the layout, the routes, and the answers every page shares (redirects,
//! error pages, assets). Every value from the API or the request is written through maud,
//! which escapes it: a payload holding `<script>` is shown as text.

mod events;
mod views;

use lambda_http::{Body, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::session::{self, Session};
use super::{Answer, Api, Console, Form, Page};

pub const CSS: &str = include_str!("../assets/app.css");
pub const JS: &str = include_str!("../assets/app.js");

/// No script, style, image or frame from anywhere but this origin; no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A GET page.
pub async fn get<A: Api>(console: &Console<A>, page: &Page<'_>) -> Response<Body> {
    let segments: Vec<&str> = page.path.split('/').skip(2).collect();
    match segments.as_slice() {
        [] | [""] => redirect("/console/events", None),
        ["events"] => events::list(console, page).await,
        ["events", id] => events::detail(console, page, id).await,
        ["replay"] => events::bulk_preview(console, page).await,
        ["failures"] => views::failures(console, page).await,
        ["failures", "redrive"] => views::redrive_preview(console, page).await,
        ["sources"] => views::sources(console, page).await,
        ["sources", id, action @ ("rotate" | "disable")] => views::source_confirm(page, id, action),
        ["recovery"] => views::recovery(console, page).await,
        ["ab"] => views::ab(console, page).await,
        ["health"] => views::health(console, page).await,
        _ => error_page(Some(page.session), 404, "not_found", "No such page."),
    }
}

/// A POST action (the session and its CSRF token already checked).
pub async fn post<A: Api>(console: &Console<A>, page: &Page<'_>, form: &Form) -> Response<Body> {
    let segments: Vec<&str> = page.path.split('/').skip(2).collect();
    match segments.as_slice() {
        ["events", id, "replay"] => events::replay_one(console, page, id).await,
        ["replay"] => events::bulk_replay(console, page, form).await,
        ["failures", "redrive"] => views::redrive(console, page, form).await,
        ["sources", id, action @ ("rotate" | "disable")] => {
            views::source_action(console, page, id, action).await
        }
        _ => error_page(Some(page.session), 404, "not_found", "No such action."),
    }
}

/// The route's shape for the log line (never an id).
pub fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    match segments.as_slice() {
        ["events", _] => "/console/events/{id}",
        ["events", _, "replay"] => "/console/events/{id}/replay",
        ["events"] => "/console/events",
        ["replay"] => "/console/replay",
        ["failures"] => "/console/failures",
        ["failures", "redrive"] => "/console/failures/redrive",
        ["sources"] => "/console/sources",
        ["sources", _, "rotate"] => "/console/sources/{id}/rotate",
        ["sources", _, "disable"] => "/console/sources/{id}/disable",
        ["recovery"] => "/console/recovery",
        ["ab"] => "/console/ab",
        ["health"] => "/console/health",
        ["sign-in"] => "/console/sign-in",
        ["sign-out"] => "/console/sign-out",
        ["assets", _] => "/console/assets/{file}",
        _ => "/console/other",
    }
}

fn html_response(status: u16, markup: Markup) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(Body::Text(markup.into_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub fn asset(content_type: &str, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(text.to_owned()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub fn redirect(to: &str, set_cookie: Option<String>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(303)
        .header("location", to)
        .header("cache-control", "no-store");
    if let Some(cookie) = set_cookie {
        builder = builder.header("set-cookie", cookie);
    }
    builder
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub fn clear_session() -> String {
    session::set_cookie(session::COOKIE, "", 0)
}

/// The page around a view: navigation (operator views for operator keys), the tenant, sign-out.
fn layout(session: Option<&Session>, title: &str, active: &str, body: Markup) -> Markup {
    let mut nav = vec![
        ("events", "Events"),
        ("failures", "Failures"),
        ("sources", "Sources"),
        ("recovery", "Recovery"),
        ("ab", "A/B"),
    ];
    if session.is_some_and(|s| s.has("operator")) {
        nav.push(("health", "Health"));
    }
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Inlet console" }
                link rel="stylesheet" href="/console/assets/app.css";
                script src="/console/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/events" { "Inlet" }
                    @if let Some(session) = session {
                        nav aria-label="Views" {
                            @for (slug, label) in &nav {
                                a href={ "/console/" (slug) } aria-current=[(*slug == active).then_some("page")] { (label) }
                            }
                        }
                        div.who {
                            span title="The tenant this key belongs to" { (session.company) }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

pub fn page(session: &Session, title: &str, active: &str, body: Markup) -> Response<Body> {
    html_response(200, layout(Some(session), title, active, body))
}

pub fn error_page(
    session: Option<&Session>,
    status: u16,
    code: &str,
    detail: &str,
) -> Response<Body> {
    let body = html! {
        p.problem role="alert" { (detail) " " code { "(" (code) ")" } }
        p { a href="/console/events" { "Back to events" } }
    };
    html_response(status, layout(session, "Something is wrong", "", body))
}

/// A page for an API answer that is not 2xx: sign-in for a key no longer valid, else the
/// problem's own words and status.
pub fn api_problem(session: &Session, answer: &Answer) -> Response<Body> {
    let (code, detail) = answer.problem();
    if answer.status == 401 {
        return redirect("/console/sign-in", Some(clear_session()));
    }
    let status = if answer.status >= 400 {
        answer.status
    } else {
        502
    };
    error_page(Some(session), status, &code, &detail)
}

pub fn sign_in_form(message: Option<&str>, status: u16) -> Response<Body> {
    let token = session::token();
    let body = html! {
        @if let Some(message) = message { p.problem role="alert" { (message) } }
        form.sign-in method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(token);
            label for="key" { "Tenant API key" }
            input id="key" name="key" type="password" autocomplete="off" required placeholder="ink_…" maxlength="200";
            button type="submit" { "Sign in" }
        }
        p.hint { "Create one with " code { "inlet keys create --company <id> --scopes admin" } "; " code { "make run" } " prints one for the demo company." }
    };
    let mut response = html_response(status, layout(None, "Sign in", "", body));
    if let Ok(value) = session::set_cookie(session::SIGN_IN_COOKIE, &token, 3600).parse() {
        response.headers_mut().append("set-cookie", value);
    }
    response
}

/// A hidden CSRF field for a form of this session.
fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// The console's query parameters that are also the API's: empty ones dropped, `datetime-local`
/// values given seconds and UTC.
fn api_query(query: Option<&str>, allowed: &[&str]) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(n, v)| allowed.contains(&n.as_ref()) && !v.is_empty())
        .map(|(n, v)| {
            let v = if (n == "since" || n == "until") && v.len() == 16 && v.as_bytes()[10] == b'T' {
                format!("{v}:00Z")
            } else {
                v.into_owned()
            };
            (n.into_owned(), v)
        })
        .collect()
}

/// A form's non-empty fields among `allowed` (hidden fields carrying a preview's filters).
fn form_filters(form: &Form, allowed: &[&str]) -> Vec<(String, String)> {
    form.iter()
        .filter(|(n, v)| allowed.contains(&n.as_str()) && !v.is_empty())
        .cloned()
        .collect()
}

/// The API body of a filtered action: each filter as a string field, and `dry_run`.
fn filter_body(filters: &[(String, String)], dry_run: bool) -> Value {
    let mut body = serde_json::json!({ "dry_run": dry_run });
    for (name, value) in filters {
        body[name.as_str()] = Value::String(value.clone());
    }
    body
}

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn text<'v>(value: &'v Value, name: &str) -> &'v str {
    value.get(name).and_then(Value::as_str).unwrap_or("")
}

fn int(value: &Value, name: &str) -> i64 {
    value.get(name).and_then(Value::as_i64).unwrap_or(0)
}

/// An RFC 3339 time as `2026-12-01 10:00:01` (UTC), with the full value on hover.
fn when(value: &Value, name: &str) -> Markup {
    let full = text(value, name);
    let short = full.get(..19).unwrap_or(full).replace('T', " ");
    html! { time datetime=(full) title=(full) { (short) } }
}

/// Minor units as `12.34 USD`.
fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        minor / 100,
        minor % 100,
        currency.to_uppercase()
    )
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
