//! The local HTTP API: matches HttpApi routes (method + path with `{params}`), builds the API
//! Gateway v2 (payload format 2.0) event, invokes the function and returns its response as API
//! Gateway does. Under `/_inlet/` it also serves the stack's control calls (`inlet local invoke`
//! and `trigger`), which no template route may use.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::function::{Failure, LocalFunction};
use super::Stack;

/// API Gateway's payload limit for HTTP APIs.
const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: usize,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The order in which API Gateway (HTTP API) tries routes, lowest first: literal paths,
    /// then paths with variables (fewer first), then greedy `{name+}` paths; within each, a
    /// route of one method before `ANY`.
    pub fn precedence(&self) -> (bool, usize, bool) {
        let segments: Vec<&str> = self.path.split('/').collect();
        let greedy = segments.iter().any(|s| s.ends_with("+}"));
        let variables = segments.iter().filter(|s| s.starts_with('{')).count();
        (greedy, variables, self.method == "ANY")
    }

    /// The path parameters when `method` and `path` match this route.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let mut parameters = BTreeMap::new();
        let mut actual = path.trim_start_matches('/').split('/');
        let mut pattern = self.path.trim_start_matches('/').split('/').peekable();
        while let Some(part) = pattern.next() {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
                // Greedy: the rest of the path.
                let rest: Vec<&str> = actual.by_ref().collect();
                if rest.is_empty() || pattern.peek().is_some() {
                    return None;
                }
                parameters.insert(name.to_owned(), rest.join("/"));
                return Some(parameters);
            }
            let segment = actual.next()?;
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !segment.is_empty() => {
                    parameters.insert(name.to_owned(), percent_decode(segment));
                }
                Some(_) => return None,
                None if part == segment => {}
                None => return None,
            }
        }
        actual.next().is_none().then_some(parameters)
    }
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the gateway knows of one request.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    pub source_ip: String,
    pub request_id: String,
    pub time: SystemTime,
}

/// The API Gateway v2 event for `request` on `route`.
pub fn http_event(
    request: &HttpRequest<'_>,
    route: &Route,
    parameters: &BTreeMap<String, String>,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(percent_decode(k))
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&percent_decode(v));
            })
            .or_insert_with(|| percent_decode(v));
    }
    let time: DateTime<Utc> = request.time.into();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route.key()));
    event.insert("rawPath".into(), json!(request.path));
    event.insert("rawQueryString".into(), json!(request.query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": crate::template::LOCAL_ACCOUNT,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request.request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": time.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": time.timestamp_millis(),
        }),
    );
    if !parameters.is_empty() {
        event.insert("pathParameters".into(), json!(parameters));
    }
    if !request.body.is_empty() {
        match std::str::from_utf8(request.body) {
            Ok(text) => {
                event.insert("body".into(), json!(text));
                event.insert("isBase64Encoded".into(), json!(false));
            }
            Err(_) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(request.body);
                event.insert("body".into(), json!(encoded));
                event.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        event.insert("isBase64Encoded".into(), json!(false));
    }
    Value::Object(event)
}

pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn message(status: u16, text: &str) -> HttpAnswer {
    HttpAnswer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(json!({ "message": text }).to_string()),
    }
}

/// API Gateway's reading of a function's payload-format-2.0 response.
pub fn http_answer(payload: &[u8]) -> HttpAnswer {
    let Ok(value) = serde_json::from_slice::<Value>(payload) else {
        return message(502, "Internal Server Error");
    };
    let Some(status) = value.get("statusCode") else {
        // No statusCode: API Gateway treats the whole payload as a JSON body.
        return HttpAnswer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(payload),
        };
    };
    let Some(status) = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
    else {
        return message(502, "Internal Server Error");
    };
    let mut headers = Vec::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, v) in map {
            if let Some(v) = v.as_str() {
                headers.push((name.clone(), v.to_owned()));
            }
        }
    }
    if let Some(map) = value.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in map {
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                headers.push((name.clone(), v.to_owned()));
            }
        }
    }
    for cookie in value
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        headers.push(("set-cookie".into(), cookie.to_owned()));
    }
    let text = value
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => Bytes::from(bytes),
            Err(_) => return message(502, "Internal Server Error"),
        }
    } else {
        Bytes::copy_from_slice(text.as_bytes())
    };
    HttpAnswer {
        status,
        headers,
        body,
    }
}

fn to_response(answer: HttpAnswer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// `POST /_inlet/invoke/{Function}` and `POST /_inlet/trigger/{Function}`.
async fn control(stack: &Stack, action: &str, function: &str, body: Bytes) -> HttpAnswer {
    let Some(local) = stack.function(function) else {
        return message(404, &format!("no function {function} in the template"));
    };
    let payload = match action {
        "invoke" => body,
        "trigger" => match local.spec.schedules.first() {
            Some(schedule) => stack.schedule_payload(local, schedule),
            None => return message(400, &format!("{function} has no Schedule event")),
        },
        _ => return message(404, "Not Found"),
    };
    let invocation = local.invoke(payload).await;
    let (error, payload) = match &invocation.result {
        Ok(body) => (Value::Null, body.clone()),
        Err(failure) => (json!(failure.error_type()), failure.payload()),
    };
    let payload = serde_json::from_slice::<Value>(&payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
    HttpAnswer {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(
            json!({
                "functionError": error,
                "payload": payload,
                "report": invocation.report.line(invocation.result.as_ref().err()),
            })
            .to_string(),
        ),
    }
}

pub async fn handle(
    stack: Arc<Stack>,
    remote: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(to_response(message(413, "Request Entity Too Large"))),
    };
    if let Some(rest) = path.strip_prefix("/_inlet/") {
        let answer = match (method.as_str(), rest.split_once('/')) {
            ("POST", Some((action, function))) => control(&stack, action, function, body).await,
            _ => message(404, "Not Found"),
        };
        return Ok(to_response(answer));
    }
    let matched = stack
        .routes
        .iter()
        .find_map(|route| route.matches(&method, &path).map(|p| (route, p)));
    let Some((route, parameters)) = matched else {
        return Ok(to_response(message(404, "Not Found")));
    };
    let local: Arc<LocalFunction> = stack.functions[route.function].clone();
    let event = http_event(
        &HttpRequest {
            method: &method,
            path: &path,
            query: &query,
            headers,
            body: &body,
            source_ip: remote.ip().to_string(),
            request_id: stack.next_id(),
            time: SystemTime::now(),
        },
        route,
        &parameters,
    );
    // The client is answered when the function posts its response, as API Gateway does; the
    // invocation goes on (post-response work) until the runtime asks for the next one.
    let (answered, answer) = tokio::sync::oneshot::channel();
    let payload = Bytes::from(event.to_string());
    tokio::spawn(async move { local.invoke_answering(payload, Some(answered)).await });
    let result = answer.await.unwrap_or_else(|_| {
        Err(Failure::Spawn(
            "the invocation ended without an answer".into(),
        ))
    });
    let answer = match result {
        Ok(payload) => http_answer(&payload),
        Err(Failure::Timeout(_)) => message(503, "Service Unavailable"),
        Err(_) => message(502, "Internal Server Error"),
    };
    Ok(to_response(answer))
}

#[cfg(test)]
mod tests;
