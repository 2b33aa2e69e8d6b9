//! The console's own checks, in process, over an API that records what reached it.
use super::*;
use std::sync::Mutex;

/// An API that records what it was asked and answers every key with one tenant's `/v1/me`
/// and an empty page: the console's own checks are what these tests prove.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<String>>,
}

impl Api for Recorder {
    async fn call(&self, request: Request) -> Response<Body> {
        let path = request.uri().to_string();
        let authorized = request.headers().contains_key("authorization");
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(format!("{} {path} {authorized}", request.method()));
        }
        let body = if path.starts_with("/v1/me") {
            r#"{"company_id":"co_a","key_id":"k","scopes":["admin"]}"#
        } else {
            r#"{"data":[],"next_cursor":null,"selected":0,"enqueued":0}"#
        };
        Response::new(Body::Text(body.into()))
    }
}

fn keys() -> KeyRing {
    KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", None).unwrap()
}

fn console() -> Console<Recorder> {
    Console {
        api: Recorder::default(),
        keys: keys(),
    }
}

fn session() -> Session {
    Session::new(
        "ink_key".into(),
        "co_a".into(),
        vec!["admin".into()],
        inlet_core::clock::now_ms() / 1000,
    )
}

fn request(method: &str, path: &str, cookie: Option<&str>, body: &str) -> Request {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::Text(body.into()))
        .unwrap()
}

fn text(response: &Response<Body>) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

#[tokio::test]
async fn posts_without_the_sessions_token_from_another_site_or_too_large_change_nothing() {
    let console = console();
    let session = session();
    let cookie = format!("{}={}", session::COOKIE, session.seal(&console.keys));
    let replay = "/console/events/7/replay";
    let good = format!("csrf={}", session.csrf);
    for (body, site, status, code) in [
        ("", None, 403, "csrf_mismatch"),
        (
            "csrf=00000000000000000000000000000000",
            None,
            403,
            "csrf_mismatch",
        ),
        (good.as_str(), Some("cross-site"), 403, "cross_site"),
    ] {
        let mut req = request("POST", replay, Some(&cookie), body);
        if let Some(site) = site {
            req.headers_mut()
                .insert("sec-fetch-site", site.parse().unwrap());
        }
        let response = console.handle(req).await;
        assert_eq!(response.status(), status, "{body} {site:?}");
        assert!(text(&response).contains(code));
    }
    let huge = format!("{good}&pad={}", "x".repeat(MAX_FORM_BYTES));
    let response = console
        .handle(request("POST", replay, Some(&cookie), &huge))
        .await;
    assert_eq!(response.status(), 413);
    let put = console
        .handle(request("PUT", "/console/events", Some(&cookie), ""))
        .await;
    assert_eq!(put.status(), 405);
    assert!(
        console.api.asked.lock().unwrap().is_empty(),
        "nothing reached the API"
    );
    // With the token, the same POST goes to the API, with the key.
    let response = console
        .handle(request("POST", replay, Some(&cookie), &good))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        console.api.asked.lock().unwrap().as_slice(),
        ["POST /v1/events/7/replay true"]
    );
}

#[tokio::test]
async fn signing_in_needs_the_forms_token_and_sets_a_strict_http_only_secure_cookie() {
    let console = console();
    let form = console
        .handle(request("GET", "/console/sign-in", None, ""))
        .await;
    let set = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    let token = set
        .strip_prefix("inlet_sign_in=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let cookie = format!("{}={token}", session::SIGN_IN_COOKIE);
    let forged = console
        .handle(request(
            "POST",
            "/console/sign-in",
            Some(&cookie),
            "csrf=forged&key=ink_x",
        ))
        .await;
    assert_eq!(forged.status(), 403);
    let signed_in = console
        .handle(request(
            "POST",
            "/console/sign-in",
            Some(&cookie),
            &format!("csrf={token}&key=ink_x"),
        ))
        .await;
    assert_eq!(signed_in.status(), 303);
    let cookies: Vec<&str> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("inlet_session=") && !c.starts_with("inlet_session=;"))
        .unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("ink_x"), "the key is sealed");
}

#[tokio::test]
async fn pages_escape_what_the_request_carries_and_answer_unknown_paths_with_404() {
    let console = console();
    let session = session();
    let cookie = format!("{}={}", session::COOKIE, session.seal(&console.keys));
    let response = console
        .handle(request(
            "GET",
            "/console/events?type=%3Cscript%3Ealert(1)%3C/script%3E",
            Some(&cookie),
            "",
        ))
        .await;
    assert_eq!(response.status(), 200);
    let page = text(&response);
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let csp = response.headers().get("content-security-policy").unwrap();
    assert!(csp.to_str().unwrap().contains("script-src 'self'"));
    let missing = console
        .handle(request("GET", "/console/nothing/here", Some(&cookie), ""))
        .await;
    assert_eq!(missing.status(), 404);
}
