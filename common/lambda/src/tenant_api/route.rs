//! The tenant API's routes: a method and path to a [`Route`], the scope each needs, and the
//! template each is logged under (never an id from the path).

use inlet_core::api_key::Scope;

use super::problem::Problem;

/// Every route, with the scope it needs (None: no key needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ListEvents,
    GetEvent(String),
    ReplayEvent(String),
    ReplayEvents,
    ListSources,
    ListCases,
    AbReport,
    EraseMember(String),
    DeadLetters,
    RequestExport(String),
    GetExport(String),
    RotateSource(String),
    DisableSource(String),
    Me,
    OpsDeadLetters,
    OpsRedrive,
    OpsHealth,
    OpenApi,
}

impl Route {
    /// The route for a method and path; 404 for an unknown path, 405 for a known path with
    /// another method.
    pub fn parse(method: &str, path: &str) -> Result<Route, Problem> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (get, post) = (method == "GET", method == "POST");
        // The method a known path takes, for 405's Allow header.
        let allow = match segments.as_slice() {
            ["", "v1", "events", "replay"] | ["", "v1", "events", _, "replay"] => "POST",
            ["", "v1", "members", _] => "DELETE",
            ["", "v1", "members", _, "export"] => "POST",
            ["", "v1", "ops", "dead-letters", "redrive"] => "POST",
            ["", "v1", "sources", _, "rotate" | "disable"] => "POST",
            _ => "GET",
        };
        let route = match segments.as_slice() {
            ["", "v1", "events"] => get.then_some(Route::ListEvents),
            ["", "v1", "events", "replay"] => post.then_some(Route::ReplayEvents),
            ["", "v1", "events", id] => get.then(|| Route::GetEvent((*id).to_owned())),
            ["", "v1", "events", id, "replay"] => {
                post.then(|| Route::ReplayEvent((*id).to_owned()))
            }
            ["", "v1", "sources"] => get.then_some(Route::ListSources),
            ["", "v1", "recovery", "cases"] => get.then_some(Route::ListCases),
            ["", "v1", "reports", "ab"] => get.then_some(Route::AbReport),
            ["", "v1", "members", id] => {
                (method == "DELETE").then(|| Route::EraseMember((*id).to_owned()))
            }
            ["", "v1", "members", id, "export"] => {
                post.then(|| Route::RequestExport((*id).to_owned()))
            }
            ["", "v1", "exports", id] => get.then(|| Route::GetExport((*id).to_owned())),
            ["", "v1", "dead-letters"] => get.then_some(Route::DeadLetters),
            ["", "v1", "openapi.json"] => get.then_some(Route::OpenApi),
            ["", "v1", "me"] => get.then_some(Route::Me),
            ["", "v1", "sources", id, "rotate"] => {
                post.then(|| Route::RotateSource((*id).to_owned()))
            }
            ["", "v1", "sources", id, "disable"] => {
                post.then(|| Route::DisableSource((*id).to_owned()))
            }
            ["", "v1", "ops", "dead-letters"] => get.then_some(Route::OpsDeadLetters),
            ["", "v1", "ops", "dead-letters", "redrive"] => post.then_some(Route::OpsRedrive),
            ["", "v1", "ops", "health"] => get.then_some(Route::OpsHealth),
            _ => return Err(Problem::not_found()),
        };
        route.ok_or_else(|| {
            let mut problem = Problem::new(
                405,
                "method_not_allowed",
                "Method not allowed",
                &format!("this path takes {allow}"),
            );
            problem.allow = Some(allow);
            problem
        })
    }

    /// Every route but the OpenAPI document needs a key.
    pub fn needs_key(&self) -> bool {
        *self != Route::OpenApi
    }

    /// The scope a route needs beyond a valid key (None: any valid key, or no key at all).
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Route::ListEvents | Route::GetEvent(_) | Route::ListSources | Route::DeadLetters => {
                Some(Scope::EventsRead)
            }
            Route::ReplayEvent(_) | Route::ReplayEvents => Some(Scope::EventsReplay),
            Route::ListCases | Route::AbReport => Some(Scope::ReportsRead),
            Route::EraseMember(_) => Some(Scope::PrivacyDelete),
            Route::RequestExport(_) | Route::GetExport(_) => Some(Scope::PrivacyExport),
            Route::OpsDeadLetters | Route::OpsRedrive | Route::OpsHealth => Some(Scope::Operator),
            Route::RotateSource(_) | Route::DisableSource(_) => Some(Scope::Admin),
            Route::Me | Route::OpenApi => None,
        }
    }

    /// The route's template, for logs and metrics (never an id from the path).
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListEvents => "GET /v1/events",
            Route::GetEvent(_) => "GET /v1/events/{id}",
            Route::ReplayEvent(_) => "POST /v1/events/{id}/replay",
            Route::ReplayEvents => "POST /v1/events/replay",
            Route::ListSources => "GET /v1/sources",
            Route::ListCases => "GET /v1/recovery/cases",
            Route::AbReport => "GET /v1/reports/ab",
            Route::EraseMember(_) => "DELETE /v1/members/{id}",
            Route::RequestExport(_) => "POST /v1/members/{id}/export",
            Route::DeadLetters => "GET /v1/dead-letters",
            Route::GetExport(_) => "GET /v1/exports/{id}",
            Route::RotateSource(_) => "POST /v1/sources/{id}/rotate",
            Route::DisableSource(_) => "POST /v1/sources/{id}/disable",
            Route::Me => "GET /v1/me",
            Route::OpsDeadLetters => "GET /v1/ops/dead-letters",
            Route::OpsRedrive => "POST /v1/ops/dead-letters/redrive",
            Route::OpsHealth => "GET /v1/ops/health",
            Route::OpenApi => "GET /v1/openapi.json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_by_method_and_unknown_ones_are_404() {
        assert_eq!(
            Route::parse("GET", "/v1/events").unwrap(),
            Route::ListEvents
        );
        assert_eq!(
            Route::parse("GET", "/v1/events/").unwrap(),
            Route::ListEvents
        );
        assert_eq!(
            Route::parse("POST", "/v1/events/12/replay").unwrap(),
            Route::ReplayEvent("12".into())
        );
        assert_eq!(
            Route::parse("POST", "/v1/events/replay").unwrap(),
            Route::ReplayEvents
        );
        assert_eq!(
            Route::parse("GET", "/v1/events/replay").unwrap_err().allow,
            Some("POST")
        );
        assert_eq!(
            Route::parse("DELETE", "/v1/events").unwrap_err().status,
            405
        );
        assert_eq!(Route::parse("GET", "/v2/events").unwrap_err().status, 404);
        assert_eq!(
            Route::parse("GET", "/v1/events/1/2/3").unwrap_err().status,
            404
        );
        assert_eq!(Route::OpenApi.scope(), None);
    }
}
