//! Slack: `X-Slack-Signature: v0=<hex>` over `"v0:{X-Slack-Request-Timestamp}:{raw body}"`.
//! Bodies are Events API JSON, or form-encoded slash commands and interactivity
//! (`payload=<json>`). Slash commands have no event id: `trigger_id` is unique per invocation.

use std::borrow::Cow;

use http::HeaderMap;
use serde::Deserialize;

use super::scheme::{
    check_timestamp, header, hex_tag, hmac_sha256, matches_any, raw_keys, required_header,
};
use super::{
    clean_id, parse_json, EventIdentity, IdentityError, SignatureError, SigningSecret, Text,
    VerifyOptions,
};

pub(crate) const SIGNATURE_HEADER: &str = "x-slack-signature";
pub(crate) const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    let value = required_header(headers, SIGNATURE_HEADER)?;
    let hex_sig = value.strip_prefix("v0=").ok_or(SignatureError::Malformed)?;
    let signature = hex_tag(hex_sig)?;
    let timestamp = header(headers, TIMESTAMP_HEADER)?.ok_or(SignatureError::TimestampInvalid)?;
    check_timestamp(timestamp, options)?;
    matches_any(
        raw_keys(secrets),
        &[b"v0:", timestamp.as_bytes(), b":", body],
        &[signature],
    )
}

pub(crate) fn sign(secret: &SigningSecret, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac_sha256(
        secret.expose().as_bytes(),
        &[b"v0:", t.as_bytes(), b":", body],
    );
    format!("v0={}", hex::encode(mac))
}

#[derive(Deserialize)]
struct EventsApi<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
    event_time: Option<i64>,
    #[serde(borrow)]
    event: Option<InnerEvent<'a>>,
    #[serde(borrow)]
    challenge: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct InnerEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Interaction<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    trigger_id: Option<Text<'a>>,
    #[serde(borrow)]
    action_ts: Option<Text<'a>>,
}

fn is_json(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The answer to Slack's `url_verification` handshake: the challenge, echoed back.
pub(crate) fn handshake(body: &[u8]) -> Option<String> {
    if !is_json(body) {
        return None;
    }
    let event: EventsApi = serde_json::from_slice(body).ok()?;
    match (event.kind.as_deref(), event.challenge) {
        (Some("url_verification"), Some(challenge)) => Some(challenge.0.into_owned()),
        _ => None,
    }
}

pub(crate) fn identify<'a>(
    _headers: &HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    if is_json(body) {
        let event: EventsApi = parse_json(body)?;
        let event_type = event
            .event
            .and_then(|e| e.kind)
            .or(event.kind)
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("event.type"))?;
        return Ok(EventIdentity {
            event_id: event
                .event_id
                .and_then(clean_id)
                .ok_or(IdentityError::MissingField("event_id"))?,
            event_type,
            occurred_at_ms: event.event_time.and_then(|t| t.checked_mul(1000)),
            body_is_json: true,
            ..EventIdentity::default()
        });
    }
    if std::str::from_utf8(body).is_err() {
        return Err(IdentityError::InvalidForm);
    }
    let mut command = None;
    let mut trigger_id = None;
    let mut payload = None;
    for (key, value) in form_urlencoded::parse(body) {
        match &*key {
            "command" => command = Some(value),
            "trigger_id" => trigger_id = Some(value),
            "payload" => payload = Some(value),
            _ => {}
        }
    }
    if let Some(payload) = payload {
        // Interactivity: a JSON document in the `payload` field.
        let interaction: Interaction =
            serde_json::from_str(&payload).map_err(|_| IdentityError::InvalidJson)?;
        let event_id = interaction
            .trigger_id
            .or(interaction.action_ts)
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("trigger_id"))?;
        let event_type = interaction
            .kind
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("type"))?;
        // The interaction was read from a decoded copy of the field, so its text is owned.
        return Ok(EventIdentity {
            event_id: Cow::Owned(event_id.into_owned()),
            event_type: Cow::Owned(event_type.into_owned()),
            ..EventIdentity::default()
        });
    }
    let command = command
        .and_then(clean_id)
        .ok_or(IdentityError::MissingField("command"))?;
    Ok(EventIdentity {
        event_id: trigger_id
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("trigger_id"))?,
        event_type: Cow::Borrowed("slash_command"),
        object_type: Some(Cow::Borrowed("command")),
        object_id: Some(command),
        occurred_at_ms: None,
        // Form-encoded: carried as a string.
        body_is_json: false,
    })
}

/// Slack in the provider table.
pub(crate) struct Slack;

impl super::ProviderSpec for Slack {
    const CARRIED_HEADERS: &'static [&'static str] = &["x-slack-retry-num", "x-slack-retry-reason"];
    const DEMO_SECRET: &'static str = "localdemoslacksigningsecret00000";

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        verify(headers, body, secrets, options)
    }

    fn identify<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Result<EventIdentity<'a>, IdentityError> {
        identify(headers, body)
    }

    fn sign(
        secret: &SigningSecret,
        body: &[u8],
        timestamp: i64,
        _event_id: &str,
    ) -> Vec<(String, String)> {
        vec![
            (SIGNATURE_HEADER.to_owned(), sign(secret, timestamp, body)),
            (TIMESTAMP_HEADER.to_owned(), timestamp.to_string()),
        ]
    }

    fn handshake(body: &[u8]) -> Option<String> {
        handshake(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::headers;
    use crate::providers::Provider;

    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: i64 = 1_531_420_618;
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const AT_DOC: VerifyOptions = VerifyOptions {
        now: DOC_TS,
        tolerance_secs: 300,
    };

    fn check(sig: &str, ts: &str, body: &[u8], opts: VerifyOptions) -> Result<(), SignatureError> {
        let h = headers(&[(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts)]);
        Provider::Slack.verify(&h, body, &[&SigningSecret::new(DOC_SECRET)], opts)
    }

    #[test]
    fn the_documented_vector_verifies() {
        assert_eq!(
            check(DOC_SIG, "1531420618", DOC_BODY.as_bytes(), AT_DOC),
            Ok(())
        );
        assert_eq!(
            sign(&SigningSecret::new(DOC_SECRET), DOC_TS, DOC_BODY.as_bytes()),
            DOC_SIG
        );
    }

    #[test]
    fn tampering_stale_future_and_malformed_are_refused() {
        assert_eq!(
            check(DOC_SIG, "1531420618", b"token=x", AT_DOC),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(DOC_SIG, "1531420619", DOC_BODY.as_bytes(), AT_DOC),
            Err(SignatureError::Mismatch)
        );
        let later = VerifyOptions {
            now: DOC_TS + 301,
            tolerance_secs: 300,
        };
        let earlier = VerifyOptions {
            now: DOC_TS - 301,
            tolerance_secs: 300,
        };
        assert_eq!(
            check(DOC_SIG, "1531420618", DOC_BODY.as_bytes(), later),
            Err(SignatureError::TimestampExpired)
        );
        assert_eq!(
            check(DOC_SIG, "1531420618", DOC_BODY.as_bytes(), earlier),
            Err(SignatureError::TimestampInFuture)
        );
        assert_eq!(
            check("v1=abc", "1531420618", DOC_BODY.as_bytes(), AT_DOC),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check("v0=zz", "1531420618", DOC_BODY.as_bytes(), AT_DOC),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(DOC_SIG, "soon", DOC_BODY.as_bytes(), AT_DOC),
            Err(SignatureError::TimestampInvalid)
        );
    }

    #[test]
    fn slash_commands_are_identified_by_trigger_id() {
        let identity = identify(&headers(&[]), DOC_BODY.as_bytes()).unwrap();
        assert_eq!(
            identity.event_id,
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        assert_eq!(identity.event_type, "slash_command");
        assert_eq!(identity.object_id.as_deref(), Some("/webhook-collect"));
    }

    #[test]
    fn events_api_callbacks_are_identified_by_event_id() {
        let body = br#"{"token":"x","team_id":"T1","type":"event_callback","event_id":"Ev08MFMKH6","event_time":1234567890,"event":{"type":"app_mention","text":"hi"}}"#;
        let identity = identify(&headers(&[]), body).unwrap();
        assert_eq!(identity.event_id, "Ev08MFMKH6");
        assert_eq!(identity.event_type, "app_mention");
        assert_eq!(identity.occurred_at_ms, Some(1_234_567_890_000));
    }

    #[test]
    fn interactivity_payloads_are_identified() {
        let body =
            "payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%2212.34.ab%22%7D";
        let identity = identify(&headers(&[]), body.as_bytes()).unwrap();
        assert_eq!(identity.event_id, "12.34.ab");
        assert_eq!(identity.event_type, "block_actions");
    }

    #[test]
    fn url_verification_is_a_handshake_not_an_event() {
        let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            handshake(body).as_deref(),
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        );
        assert_eq!(handshake(DOC_BODY.as_bytes()), None);
    }

    #[test]
    fn bodies_without_an_identity_are_refused() {
        assert_eq!(
            identify(&headers(&[]), b"text=hello"),
            Err(IdentityError::MissingField("command"))
        );
        assert_eq!(
            identify(&headers(&[]), b"command=%2Fx"),
            Err(IdentityError::MissingField("trigger_id"))
        );
        assert_eq!(
            identify(&headers(&[]), b"\xff\xfe"),
            Err(IdentityError::InvalidForm)
        );
        assert_eq!(
            identify(&headers(&[]), b"{nope"),
            Err(IdentityError::InvalidJson)
        );
    }
}
