//! Query strings and bodies of the tenant API, checked before anything touches the database:
//! an unknown or repeated parameter, a value of the wrong shape, a page too large is a 400
//! naming the parameter.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use inlet_domain::api::{DEFAULT_PAGE, MAX_PAGE};

use super::problem::Problem;

/// The longest text a filter takes (event types, object ids).
pub const MAX_FILTER_LEN: usize = 200;

/// A query string's parameters, each at most once and each one of `allowed`.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, Problem> {
        let mut params = BTreeMap::new();
        let query = query.unwrap_or("");
        if query.len() > 4096 {
            return Err(Problem::bad_query(
                "the query string is longer than 4096 bytes",
            ));
        }
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(Problem::bad_query(&format!(
                    "unknown parameter {:?}; this route takes {}",
                    truncate(&name),
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(Problem::bad_query(&format!(
                    "parameter {name} is given twice"
                )));
            }
        }
        Ok(Params(params))
    }

    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.0.get(name) {
            None => Ok(None),
            Some(value) if value.is_empty() || value.chars().count() > MAX_FILTER_LEN => Err(
                Problem::bad_query(&format!("{name}: 1 to {MAX_FILTER_LEN} characters")),
            ),
            Some(value) if value.chars().any(char::is_control) => Err(Problem::bad_query(
                &format!("{name}: no control characters"),
            )),
            Some(value) => Ok(Some(value.clone())),
        }
    }

    /// One of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, Problem> {
        match self.0.get(name) {
            None => Ok(None),
            Some(value) if allowed.contains(&value.as_str()) => Ok(Some(value.clone())),
            Some(_) => Err(Problem::bad_query(&format!(
                "{name}: one of {}",
                allowed.join(", ")
            ))),
        }
    }

    /// An RFC 3339 time, normalised to UTC.
    pub fn time(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.0.get(name) {
            None => Ok(None),
            // Before the year 1 (which Postgres cannot hold) is the same filter as the year 1.
            Some(value) => OffsetDateTime::parse(value, &Rfc3339)
                .ok()
                .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
                .map(|t| t.max(earliest()))
                .and_then(|t| t.format(&Rfc3339).ok())
                .map(Some)
                .ok_or_else(|| {
                    Problem::bad_query(&format!(
                        "{name}: an RFC 3339 time such as 2026-12-01T00:00:00Z"
                    ))
                }),
        }
    }

    /// `limit`: 1 to 100, 50 when absent.
    pub fn limit(&self) -> Result<i64, Problem> {
        match self.0.get("limit") {
            None => Ok(DEFAULT_PAGE),
            Some(value) => value
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| Problem::bad_query(&format!("limit: 1 to {MAX_PAGE}"))),
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, Problem> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Problem::bad_query(&format!("{name}: true or false"))),
        }
    }

    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// 0001-01-01T00:00:00Z: the earliest time a filter needs.
fn earliest() -> OffsetDateTime {
    time::Date::from_calendar_date(1, time::Month::January, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_by_name() {
        let allowed = ["status", "limit", "since", "until"];
        let err = |q: &str| Params::parse(Some(q), &allowed).unwrap_err().detail;
        assert!(err("nope=1")
            .contains("unknown parameter \"nope\"; this route takes status, limit, since, until"));
        assert!(err("status=a&status=b").contains("status is given twice"));
        let p = Params::parse(
            Some("limit=1000&since=yesterday&status=x%27%20OR%201%3D1"),
            &allowed,
        )
        .unwrap();
        assert!(p.limit().unwrap_err().detail.contains("limit: 1 to 100"));
        assert!(p.time("since").unwrap_err().detail.contains("RFC 3339"));
        assert!(p
            .one_of("status", &["completed"])
            .unwrap_err()
            .detail
            .contains("one of completed"));
        let p = Params::parse(Some("since=2026-12-01T01:00:00%2B01:00&limit=7"), &allowed).unwrap();
        assert_eq!(
            p.time("since").unwrap().as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(p.limit().unwrap(), 7);
        let p = Params::parse(
            Some("since=0000-03-01T00:00:00Z&until=0620-07-08T09:58:06-11:50"),
            &allowed,
        )
        .unwrap();
        assert_eq!(
            p.time("since").unwrap().as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        assert_eq!(
            p.time("until").unwrap().as_deref(),
            Some("0620-07-08T21:48:06Z")
        );
        assert_eq!(
            Params::parse(None, &allowed).unwrap().limit().unwrap(),
            DEFAULT_PAGE
        );
    }
}
