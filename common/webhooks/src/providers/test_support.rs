//! Shared by the providers' unit tests.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::VerifyOptions;

pub(crate) const NOW: i64 = 1_700_000_000;
pub(crate) const OPTS: VerifyOptions = VerifyOptions {
    now: NOW,
    tolerance_secs: 300,
};

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}
