//! Outbound webhooks: the HTTP client reminders are delivered with, and its guard against
//! server-side request forgery. In production, private, loopback, link-local and CGNAT
//! addresses are refused, both written literally in the URL and at DNS resolution (the checked
//! answer is the one connected to, so a rebinding name cannot slip through). No redirects are
//! followed; every request has a timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inlet_domain::ports::{Answer, BoxFuture, Delivery, DeliveryError, WebhookChannel};

/// Whether an address is one a production sender must never reach (SSRF).
pub fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 (CGNAT)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// DNS for outbound webhooks in production: names resolving only to private addresses fail.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err("the endpoint resolves to no public address".into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Literal private addresses in the URL itself (no DNS involved) are refused up front.
pub fn refuses_literal(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(address) => is_private(address),
        Err(_) => bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost"),
    }
}

/// How outbound webhooks are sent.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Refuse private addresses (production).
    pub production: bool,
    pub timeout: Duration,
}

/// The webhook channel: signed POSTs with JSON bodies.
#[derive(Clone)]
pub struct HttpDelivery {
    client: reqwest::Client,
    production: bool,
}

impl HttpDelivery {
    pub fn new(settings: HttpSettings) -> Result<HttpDelivery, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Inlet-Reminders/1");
        if settings.production {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(HttpDelivery {
            client: builder.build()?,
            production: settings.production,
        })
    }

    async fn deliver(&self, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Delivery {
        let refused = |error| Delivery {
            answer: Err(error),
            latency_ms: 0,
        };
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return refused(DeliveryError::InvalidUrl);
        };
        if self.production && refuses_literal(&parsed) {
            return refused(DeliveryError::PrivateAddress);
        }
        let mut request = self
            .client
            .post(parsed)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let answer = request.body(body).send().await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let answer = match answer {
            Ok(response) => Ok(Answer {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            }),
            // The URL is the company's configuration, not a secret; the body is never logged.
            Err(error) if error.is_timeout() => Err(DeliveryError::Timeout),
            Err(_) => Err(DeliveryError::Connection),
        };
        Delivery { answer, latency_ms }
    }
}

impl WebhookChannel for HttpDelivery {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Delivery> {
        Box::pin(self.deliver(url, headers, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        for url in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://169.254.169.254/latest",
        ] {
            assert!(refuses_literal(&reqwest::Url::parse(url).unwrap()), "{url}");
        }
        assert!(!refuses_literal(
            &reqwest::Url::parse("https://hooks.example.com/x").unwrap()
        ));
    }
}
