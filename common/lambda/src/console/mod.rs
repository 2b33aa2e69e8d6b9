//! The `console` function: the web console at `/console` on the HTTP API, for tenants and
//! operators. Server-rendered HTML (maud), a few lines of vendored-free JavaScript, nothing from
//! another host.
//!
//! There is no second authorization path: every read and action is a request to the tenant
//! API's own handler, in process, with the signed-in key as its bearer; the API checks the key,
//! its scopes, its rate limit and the tenant's row-level security exactly as for any client,
//! and the console renders its answer (or its problem). The session cookie carries the key
//! sealed (see [`session`]); every POST needs the session's CSRF token and a same-origin
//! browser (`Sec-Fetch-Site`, where sent).

mod pages;
pub mod session;

use std::time::Instant;

use lambda_http::{service_fn, Body, Request, Response};
use serde_json::Value;

use inlet_core::config::ProcessEnv;
use inlet_core::crypto::KeyRing;

use crate::tenant_api::{self, ApiSettings, LiveApi};
use session::Session;

pub use lambda_http::Error;

/// The largest form accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The console over the tenant API it calls.
pub struct Console<A> {
    pub api: A,
    pub keys: KeyRing,
}

/// Whatever answers a tenant API request: the live API, or in tests the same over other ports.
pub trait Api: Sync {
    fn call(&self, request: Request) -> impl std::future::Future<Output = Response<Body>> + Send;
}

impl Api for LiveApi {
    async fn call(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

/// The tenant API's answer: status and JSON (a problem document when not 2xx).
pub struct Answer {
    pub status: u16,
    pub json: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The problem's `code` and `detail`.
    pub fn problem(&self) -> (String, String) {
        let text = |name: &str| {
            self.json
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        (text("code"), text("detail"))
    }
}

/// One console request as the pages see it.
pub struct Page<'a> {
    pub session: &'a Session,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl<A: Api> Console<A> {
    /// A tenant API request with the session's key.
    pub async fn api(
        &self,
        session: &Session,
        method: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("authorization", format!("Bearer {}", session.key));
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::Text(json.to_string())
            }
            None => Body::Empty,
        };
        let Ok(request) = builder.body(body) else {
            return Answer {
                status: 400,
                json: serde_json::json!({"code": "invalid_query", "detail": "the address is not valid"}),
            };
        };
        let response = self.api.call(request).await;
        let status = response.status().as_u16();
        let json = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        Answer { status, json }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let response = self.answer(&request).await;
        tracing::info!(
            method = %request.method(),
            route = pages::route_template(request.uri().path()),
            status = response.status().as_u16(),
            duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "console request"
        );
        response
    }

    async fn answer(&self, request: &Request) -> Response<Body> {
        let path = request.uri().path().trim_end_matches('/');
        let method = request.method().as_str();
        let cookies = request
            .headers()
            .get("cookie")
            .and_then(|v| v.to_str().ok());
        match (method, path) {
            ("GET", "/console/assets/app.css") => return pages::asset("text/css", pages::CSS),
            ("GET", "/console/assets/app.js") => return pages::asset("text/javascript", pages::JS),
            ("GET", "/console/sign-in") => return pages::sign_in_form(None, 200),
            ("POST", "/console/sign-in") => return self.sign_in(request, cookies).await,
            _ => {}
        }
        let now = inlet_core::clock::now_ms() / 1000;
        let session = session::cookie(cookies, session::COOKIE)
            .and_then(|value| Session::open(value, &self.keys, now));
        let Some(session) = session else {
            // Signed out, expired, tampered or foreign: to sign-in, nothing done.
            return pages::redirect("/console/sign-in", Some(pages::clear_session()));
        };
        if method == "POST" {
            if !same_origin(request) {
                return pages::error_page(
                    Some(&session),
                    403,
                    "cross_site",
                    "This form was sent from another site.",
                );
            }
            let form = match form(request) {
                Ok(form) => form,
                Err(response) => return *response,
            };
            if !session.csrf_matches(form_value(&form, "csrf")) {
                return pages::error_page(
                    Some(&session),
                    403,
                    "csrf_mismatch",
                    "The form's security token is missing or wrong; reload the page and try again.",
                );
            }
            if path == "/console/sign-out" {
                return pages::redirect("/console/sign-in", Some(pages::clear_session()));
            }
            let page = Page {
                session: &session,
                path,
                query: None,
            };
            return pages::post(self, &page, &form).await;
        }
        if method != "GET" {
            return pages::error_page(
                Some(&session),
                405,
                "method_not_allowed",
                "GET or POST only.",
            );
        }
        let page = Page {
            session: &session,
            path,
            query: request.uri().query(),
        };
        pages::get(self, &page).await
    }

    async fn sign_in(&self, request: &Request, cookies: Option<&str>) -> Response<Body> {
        let form = match form(request) {
            Ok(form) => form,
            Err(response) => return *response,
        };
        let expected = session::cookie(cookies, session::SIGN_IN_COOKIE).unwrap_or("");
        if !same_origin(request) || !session::same_token(expected, form_value(&form, "csrf")) {
            return pages::sign_in_form(
                Some("The sign-in form expired or came from another site; try again."),
                403,
            );
        }
        let key = form_value(&form, "key").unwrap_or("").trim().to_owned();
        if key.is_empty() || key.len() > 200 {
            return pages::sign_in_form(Some("Paste a tenant API key (ink_…)."), 400);
        }
        let probe = Session::new(key, String::new(), Vec::new(), 0);
        let me = self.api(&probe, "GET", "/v1/me", None).await;
        if !me.ok() {
            let (code, detail) = me.problem();
            let status = if me.status == 429 || me.status >= 500 {
                503
            } else {
                401
            };
            return pages::sign_in_form(Some(&format!("{detail} ({code})")), status);
        }
        let text = |name: &str| {
            me.json
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let scopes = me
            .json
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let now = inlet_core::clock::now_ms() / 1000;
        let session = Session::new(probe.key, text("company_id"), scopes, now);
        let mut response = pages::redirect("/console/events", None);
        for cookie in [
            session::set_cookie(
                session::COOKIE,
                &session.seal(&self.keys),
                session::TTL_SECS,
            ),
            session::set_cookie(session::SIGN_IN_COOKIE, "", 0),
        ] {
            if let Ok(value) = cookie.parse() {
                response.headers_mut().append("set-cookie", value);
            }
        }
        response
    }
}

/// A POST from a page of this origin: browsers send `Sec-Fetch-Site`; one saying another site
/// is refused (SameSite=Strict already keeps the cookie from such a request; this is the
/// second lock).
fn same_origin(request: &Request) -> bool {
    request
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| site == "same-origin" || site == "none")
}

pub type Form = Vec<(String, String)>;

pub fn form_value<'f>(form: &'f Form, name: &str) -> Option<&'f str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
fn form(request: &Request) -> Result<Form, Box<Response<Body>>> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_FORM_BYTES {
        return Err(Box::new(pages::error_page(
            None,
            413,
            "body_too_large",
            "The form is too large.",
        )));
    }
    Ok(form_urlencoded::parse(body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect())
}

/// The whole of `console`'s `main`.
pub async fn run() -> Result<(), Error> {
    crate::telemetry::init(crate::telemetry::LogFormat::Json);
    let settings = ApiSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let keys = settings.keys.clone();
    let console = Console {
        api: tenant_api::build(settings).await,
        keys,
    };
    let console = &console;
    lambda_http::run(service_fn(move |request: Request| async move {
        let started = Instant::now();
        let response = console.handle(request).await;
        crate::metrics::emit_invocation(
            &crate::metrics::Stdout,
            "console",
            &crate::metrics::answered(started.elapsed(), response.status().as_u16()),
        );
        Ok::<_, Error>(response)
    }))
    .await
}

#[cfg(test)]
mod tests;
