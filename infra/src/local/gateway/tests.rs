use super::*;

fn route(method: &str, path: &str) -> Route {
    Route {
        method: method.into(),
        path: path.into(),
        function: 0,
    }
}

#[test]
fn literal_routes_come_before_variables_and_greedy_routes_last_as_api_gateway_tries_them() {
    let mut routes = [
        route("ANY", "/v1/{proxy+}"),
        route("GET", "/v1/events/{id}"),
        route("POST", "/v1/events/replay"),
        route("GET", "/v1/events"),
    ];
    routes.sort_by_key(Route::precedence);
    let keys: Vec<String> = routes.iter().map(Route::key).collect();
    assert_eq!(
        keys,
        [
            "POST /v1/events/replay",
            "GET /v1/events",
            "GET /v1/events/{id}",
            "ANY /v1/{proxy+}"
        ]
    );
}

#[test]
fn routes_match_method_and_path_with_parameters() {
    let r = route("POST", "/webhooks/stripe/{source_id}");
    assert_eq!(
        r.matches("POST", "/webhooks/stripe/src_1"),
        Some(BTreeMap::from([(
            "source_id".to_owned(),
            "src_1".to_owned()
        )]))
    );
    assert_eq!(r.matches("GET", "/webhooks/stripe/src_1"), None);
    assert_eq!(r.matches("POST", "/webhooks/stripe/"), None);
    assert_eq!(r.matches("POST", "/webhooks/stripe/a/b"), None);
    assert_eq!(r.matches("POST", "/webhooks/clerk/src_1"), None);
    let greedy = route("ANY", "/files/{path+}");
    assert_eq!(
        greedy.matches("DELETE", "/files/a/b%20c"),
        Some(BTreeMap::from([("path".to_owned(), "a/b%20c".to_owned())]))
    );
    assert_eq!(
        route("GET", "/r/{token}").matches("GET", "/r/a%2Fb"),
        Some(BTreeMap::from([("token".to_owned(), "a/b".to_owned())]))
    );
}

fn request<'a>(body: &'a [u8], headers: Vec<(String, String)>) -> HttpRequest<'a> {
    HttpRequest {
        method: "POST",
        path: "/webhooks/stripe/src_1",
        query: "a=1&b=x%20y&a=2",
        headers,
        body,
        source_ip: "127.0.0.1".into(),
        request_id: "req-1".into(),
        time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
    }
}

#[test]
fn the_event_has_api_gateway_v2_shape() {
    let r = route("POST", "/webhooks/stripe/{source_id}");
    let headers = vec![
        ("Stripe-Signature".to_owned(), "t=1,v1=ab".to_owned()),
        ("X-Many".to_owned(), "1".to_owned()),
        ("x-many".to_owned(), "2".to_owned()),
        ("Cookie".to_owned(), "a=1; b=2".to_owned()),
        ("Host".to_owned(), "127.0.0.1:3000".to_owned()),
    ];
    let params = r.matches("POST", "/webhooks/stripe/src_1").unwrap();
    let event = http_event(&request(b"{\"id\":1}", headers), &r, &params);
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "POST /webhooks/stripe/{source_id}");
    assert_eq!(event["rawPath"], "/webhooks/stripe/src_1");
    assert_eq!(event["rawQueryString"], "a=1&b=x%20y&a=2");
    assert_eq!(
        event["queryStringParameters"],
        json!({"a": "1,2", "b": "x y"})
    );
    assert_eq!(event["headers"]["stripe-signature"], "t=1,v1=ab");
    assert_eq!(event["headers"]["x-many"], "1,2");
    assert!(event["headers"].get("cookie").is_none());
    assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(event["pathParameters"], json!({"source_id": "src_1"}));
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["timeEpoch"], 1_700_000_000_123_i64);
    assert_eq!(event["requestContext"]["requestId"], "req-1");
    assert_eq!(event["body"], "{\"id\":1}");
    assert_eq!(event["isBase64Encoded"], false);
    // The event is what lambda_http reads.
    let parsed: Result<aws_lambda_events::apigw::ApiGatewayV2httpRequest, _> =
        serde_json::from_value(event);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn binary_bodies_are_base64_encoded() {
    let r = route("POST", "/x");
    let event = http_event(&request(&[0xff, 0x00, 0x80], vec![]), &r, &BTreeMap::new());
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "/wCA");
}

#[test]
fn responses_are_read_as_api_gateway_reads_them() {
    let answer = http_answer(
        br#"{"statusCode":202,"headers":{"content-type":"application/json"},"cookies":["s=1"],"body":"{\"status\":\"accepted\"}"}"#,
    );
    assert_eq!(answer.status, 202);
    assert!(answer
        .headers
        .contains(&("set-cookie".into(), "s=1".into())));
    assert_eq!(&answer.body[..], br#"{"status":"accepted"}"#);
    let binary = http_answer(br#"{"statusCode":200,"body":"/wCA","isBase64Encoded":true}"#);
    assert_eq!(&binary.body[..], [0xff, 0x00, 0x80]);
    let bare = http_answer(br#"{"ok":true}"#);
    assert_eq!((bare.status, &bare.body[..]), (200, &br#"{"ok":true}"#[..]));
    assert_eq!(http_answer(b"not json").status, 502);
    assert_eq!(http_answer(br#"{"statusCode":"x"}"#).status, 502);
}
