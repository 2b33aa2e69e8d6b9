//! The routes under `/v1/`, each documented where it is written: the OpenAPI document served
//! at `/v1/openapi.json` is generated from these attributes (utoipa), and the route matrix test
//! enumerates the routes from that document.

mod events;
mod members;
mod ops;
mod reports;
mod sources;

pub use events::CaseStatus;
pub use events::{
    get_event, list_dead_letters, list_events, list_sources, replay_event, replay_events,
    EventStatus,
};
pub use events::{DeadLetterGroup, DeadLetterList};
pub use members::{erase_member, get_export, request_export};
pub use ops::{health, list_all_dead_letters, me, redrive, Health, Me, RedriveResult};
pub use reports::{ab_report, list_cases};
pub use sources::{disable_source, rotate_source};

use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use inlet_core::api_key::Scope;
use inlet_domain::api::{
    self, AbReport, Cursor, EventDetail, EventFilter, EventPage, RecoveryCasePage, SourceList,
    CASE_STATUSES, EVENT_STATUSES,
};
use inlet_domain::audit::Actor;
use inlet_domain::keys::{self, Authenticated};
use inlet_domain::ops::dead_letters;
use inlet_domain::ops::replay::{self, ReplayError, Selection};
use inlet_domain::ports::{DeadLetterQueue, ExportFiles, ExportQueue};
use inlet_domain::privacy::{self, PrivacyError};
use inlet_postgres::{Connection, Tx};
use inlet_webhooks::intake::EventQueue;
use inlet_webhooks::providers::Provider;

use super::problem::{Problem, ProblemDocument};
use super::query::Params;

/// What a handler knows about its request besides its inputs.
pub struct Ctx<'a> {
    pub keys: &'a inlet_core::crypto::KeyRing,
    pub auth: &'a Authenticated,
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The tenant's transaction for a request: the key's company, and its use noted.
async fn begin<'c>(connection: &'c mut Connection, ctx: &Ctx<'_>) -> Result<Tx<'c>, Problem> {
    let (tx, _) = connection.tenant_tx(&ctx.auth.company).await?;
    keys::touch(&tx, &ctx.auth.key_id).await?;
    Ok(tx)
}

fn provider_names() -> Vec<&'static str> {
    Provider::ALL.iter().map(|p| p.as_str()).collect()
}

fn provider_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(provider_names()))
}

/// In a JSON body a filter may also be null (the same as absent).
fn nullable_provider_schema() -> impl Into<RefOr<Schema>> {
    let mut values: Vec<serde_json::Value> = provider_names().into_iter().map(Into::into).collect();
    values.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
}

/// A JSON object body of type `T`; `what` names it in the problem ("replay request"), `empty`
/// says what to send instead of nothing.
fn json_request<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    empty: &str,
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_body(empty));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::bad_body(&format!(
            "not a {what}: {}",
            e.to_string().chars().take(120).collect::<String>()
        ))
    })
}

/// A whole number from a JSON body within `range` (JSON Schema's integers include `88.0`);
/// absent: `default`.
fn whole_number(
    value: Option<&serde_json::Number>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    name: &str,
) -> Result<i64, Problem> {
    let Some(n) = value else { return Ok(default) };
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        })
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            Problem::bad_body(&format!(
                "{name}: a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// A list's cursor from the query, opened for this tenant and list.
fn cursor(params: &Params, ctx: &Ctx<'_>, list: &str) -> Result<Option<Cursor>, Problem> {
    params
        .raw("cursor")
        .map(|text| {
            Cursor::open(text, ctx.keys, &ctx.auth.company, list).map_err(|_| {
                Problem::new(
                    400,
                    "invalid_cursor",
                    "Invalid cursor",
                    "pass back the next_cursor of a page of this list, unchanged",
                )
            })
        })
        .transpose()
}

/// An event id from the path: a positive 64-bit integer.
pub fn event_id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Problem::new(
                400,
                "invalid_id",
                "Invalid id",
                "an event id is a positive integer",
            )
        })
}

pub fn missing_scope(scope: Scope) -> Problem {
    Problem::new(
        403,
        "missing_scope",
        "Missing scope",
        &format!("this needs a key with the {scope} scope"),
    )
}

/// A member id from the path: a provider id (`cus_...`, `user_...`).
pub fn member_id(text: &str) -> Result<&str, Problem> {
    let ok = (1..=200).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    ok.then_some(text).ok_or_else(|| {
        Problem::new(
            400,
            "invalid_id",
            "Invalid id",
            "a member id is 1 to 200 of A-Z a-z 0-9 _ . : @ -",
        )
    })
}

/// This document.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub fn openapi_document() -> Response<Body> {
    json(200, &ApiDoc::openapi())
}

/// What every keyed route can answer besides its own answers: the key check (401, 403), the
/// key's rate limit (429) and an unavailable store (503). Declared once, here, for every
/// operation with a security requirement.
struct KeyedAnswers;

impl Modify for KeyedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if operation.security.as_ref().is_none_or(Vec::is_empty) {
                    continue;
                }
                for (status, description) in [
                    ("401", "No valid key"),
                    ("403", "The key lacks the scope"),
                    ("429", "Too many requests for this key"),
                    ("503", "Try again shortly"),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description).into());
                }
            }
        }
    }
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ink_<key id>_<secret>")
                    .description(Some(
                        "A tenant API key (`inlet keys create`). The scopes listed on each \
                         operation are the roles it needs; `admin` allows every tenant operation; `operator` (the \
                         platform's views across tenants) is implied by no other scope.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inlet tenant API",
        version = "1",
        description = "Read a tenant's events, sources, recovery cases and A/B results; replay events. \
                       Every request is authenticated with a tenant API key and sees that tenant's data only."
    ),
    paths(
        events::list_events,
        events::get_event,
        events::replay_event,
        events::replay_events,
        events::list_sources,
        events::list_dead_letters,
        reports::list_cases,
        reports::ab_report,
        members::erase_member,
        members::request_export,
        members::get_export,
        sources::rotate_source,
        sources::disable_source,
        ops::me,
        ops::list_all_dead_letters,
        ops::redrive,
        ops::health,
        openapi_document
    ),
    components(schemas(ProblemDocument, EventStatus, CaseStatus)),
    modifiers(&BearerKey, &KeyedAnswers)
)]
pub struct ApiDoc;
