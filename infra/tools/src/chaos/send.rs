//! The replay storm: distinct Stripe events, each delivered 1 to `max` times, by concurrent
//! senders that behave as a provider does: every delivery is retried (re-signed) until it gets
//! a 2xx, honouring Retry-After.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use inlet_core::clock::now_secs;
use inlet_webhooks::providers::{Provider, SigningSecret};

/// What an event projects to, so "applied once" can be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `invoice.paid` without a subscription: one `payments` row.
    Paid,
    /// `customer.created`: one `members` row.
    Customer,
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub id: String,
    pub kind: Kind,
    pub deliveries: u32,
    pub body: Vec<u8>,
}

/// `events` distinct events (four in five invoices, one in five customers), each to be
/// delivered 1..=`max_deliveries` times.
pub fn plan(events: usize, max_deliveries: u32, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..events)
        .map(|n| {
            let id = format!("evt_chaos_{seed}_{n}");
            let created = 1_764_000_000 + n as i64;
            let (kind, body) = if n % 5 == 4 {
                (
                    Kind::Customer,
                    format!(r#"{{"id":"{id}","object":"event","type":"customer.created","created":{created},"data":{{"object":{{"id":"cus_chaos_{n}","object":"customer","email":"c{n}@example.com"}}}}}}"#),
                )
            } else {
                (
                    Kind::Paid,
                    format!(r#"{{"id":"{id}","object":"event","type":"invoice.paid","created":{created},"data":{{"object":{{"id":"in_chaos_{n}","object":"invoice","amount_paid":{},"currency":"usd","customer":"cus_chaos_{n}"}}}}}}"#, 100 + n),
                )
            };
            Planned {
                id,
                kind,
                deliveries: rng.random_range(1..=max_deliveries.max(1)),
                body: body.into_bytes(),
            }
        })
        .collect()
}

/// What the senders saw.
#[derive(Default)]
pub struct Tally {
    /// Event ids answered 2xx at least once.
    pub accepted: Mutex<BTreeSet<String>>,
    /// Deliveries that gave up at the deadline without a 2xx.
    pub unaccepted: Mutex<Vec<String>>,
    /// Answers by `status code` (problem code, or `status` for 2xx).
    pub answers: Mutex<BTreeMap<String, u64>>,
    /// Deliveries finished (accepted or given up), for the fault schedule.
    pub done: AtomicUsize,
    pub attempts: AtomicUsize,
}

impl Tally {
    fn count(&self, answer: String) {
        if let Ok(mut answers) = self.answers.lock() {
            *answers.entry(answer).or_default() += 1;
        }
    }
}

/// Where the senders send.
pub struct Target {
    pub url: String,
    pub secret: SigningSecret,
    pub deadline: Instant,
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// One delivery of one event, retried until 2xx or the deadline.
async fn deliver(client: &reqwest::Client, target: &Target, event: &Planned, tally: &Tally) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tally.attempts.fetch_add(1, Ordering::Relaxed);
        let mut request = client.post(&target.url).body(event.body.clone());
        for (name, value) in Provider::Stripe.sign(&target.secret, &event.body, now_secs(), "") {
            request = request.header(name, value);
        }
        let wait = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let after = retry_after(&response);
                let body = response.text().await.unwrap_or_default();
                let code = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "-".into());
                tally.count(format!("{status} {code}"));
                if (200..300).contains(&status) {
                    if let Ok(mut accepted) = tally.accepted.lock() {
                        accepted.insert(event.id.clone());
                    }
                    return;
                }
                // A provider retries whatever is not 2xx; the wait follows Retry-After.
                after.map_or(backoff, |s| Duration::from_secs(s.min(3)))
            }
            Err(_) => {
                tally.count("connection failed".into());
                backoff
            }
        };
        if Instant::now() + wait > target.deadline {
            if let Ok(mut unaccepted) = tally.unaccepted.lock() {
                unaccepted.push(event.id.clone());
            }
            return;
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Every planned delivery, shuffled, by `senders` concurrent senders.
pub async fn storm(
    client: reqwest::Client,
    target: Arc<Target>,
    plan: Vec<Planned>,
    senders: usize,
    seed: u64,
    tally: Arc<Tally>,
) {
    let mut deliveries: Vec<Planned> = plan
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.clone(), e.deliveries as usize))
        .collect();
    deliveries.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed));
    let queue = Arc::new(Mutex::new(VecDeque::from(deliveries)));
    let mut workers = Vec::new();
    for _ in 0..senders.max(1) {
        let (client, target, queue, tally) =
            (client.clone(), target.clone(), queue.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(event) = next else {
                    return;
                };
                deliver(&client, &target, &event, &tally).await;
                tally.done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_reproducible_from_its_seed_and_delivers_each_event_one_to_max_times() {
        let plan = plan(200, 3, 7);
        assert_eq!(plan.len(), 200);
        assert!(plan.iter().all(|e| (1..=3).contains(&e.deliveries)));
        assert!(plan.iter().any(|e| e.deliveries == 3) && plan.iter().any(|e| e.deliveries == 1));
        let again = super::plan(200, 3, 7);
        assert!(plan
            .iter()
            .zip(&again)
            .all(|(a, b)| a.deliveries == b.deliveries && a.id == b.id));
        assert_eq!(plan.iter().filter(|e| e.kind == Kind::Customer).count(), 40);
        for event in &plan {
            serde_json::from_slice::<serde_json::Value>(&event.body).unwrap();
        }
    }
}
