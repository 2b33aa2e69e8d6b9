//! Intake pipeline CPU per request, with in-memory ports, against HMAC-SHA256 alone (the floor
//! any verifier pays). Run: `cargo bench -p inlet-tools --bench intake`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use inlet_core::CompanyId;
use inlet_testing::memory::MemorySources;
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{
    Claim, DedupeStore, EventQueue, Intake, IntakeConfig, IntakeRequest, QueueError, RateDecision,
    RateLimit, RateLimiter, Source, SourceSecret, StoreError, TenantRule, DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::{Provider, SigningSecret};
use sha2::Sha256;

const SECRET: &str = "whsec_benchmark_secret_0123456789";
const NOW_MS: i64 = 1_700_000_000_000;

/// Counts heap allocations, so the benchmark can report allocations per request: a figure this
/// machine's timing noise cannot move.
struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations (and reallocations) made by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(f());
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// The in-memory ports never wait, so one poll completes the pipeline: no executor in the
/// measurement.
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory port returned Pending"),
    }
}

/// Every claim succeeds, so each iteration takes the full accept path.
struct FreshClaims;

impl DedupeStore for FreshClaims {
    async fn claim(&self, _: &str, _: &str, _: i64) -> Result<Claim, StoreError> {
        Ok(Claim::Claimed)
    }
    async fn complete(&self, _: &str, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn release(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

struct Unlimited;

impl RateLimiter for Unlimited {
    async fn hit(&self, _: &str, _: &RateLimit, _: i64) -> Result<RateDecision, StoreError> {
        Ok(RateDecision::Allowed)
    }
}

/// The in-memory queue port: takes the envelope and drops it.
struct DiscardingQueue;

impl EventQueue for DiscardingQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        black_box(envelope);
        Ok(())
    }
}

/// Also serialises the envelope as the SQS adapter does, then drops it.
struct SerializingQueue;

impl EventQueue for SerializingQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        black_box(envelope.to_json());
        Ok(())
    }
}

fn stripe_event(size: usize) -> Vec<u8> {
    inlet_tools::samples::stripe_event(size, "evt_1PbenchAbCdEf")
}

fn signed_headers(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in Provider::Stripe.sign(&SigningSecret::new(SECRET), body, NOW_MS / 1000, "")
    {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

fn intake_with<Q: EventQueue>(queue: Q) -> Intake<MemorySources, Unlimited, FreshClaims, Q> {
    Intake {
        config: IntakeConfig {
            provider: Provider::Stripe,
            production: true,
            max_body_bytes: 256 * 1024,
        },
        sources: MemorySources::with([Source {
            source_id: "src_bench".into(),
            provider: Provider::Stripe,
            tenant: TenantRule::Fixed(CompanyId::parse("co_bench").unwrap()),
            secrets: vec![SourceSecret {
                secret: SigningSecret::new(SECRET),
                not_after_ms: None,
            }],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            rate_limit: Some(RateLimit {
                requests: u32::MAX,
                window_secs: 60,
            }),
            body_limit: 256 * 1024,
            enabled: true,
        }]),
        rate_limiter: Unlimited,
        dedupe: FreshClaims,
        queue,
    }
}

/// What any Stripe verifier pays: HMAC-SHA256 over `"{t}." + body`.
fn hmac_floor(body: &[u8]) -> impl Sized {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"1700000000.");
    mac.update(black_box(body));
    black_box(mac.finalize().into_bytes())
}

/// `INLET_BENCH_INTERLEAVED=1`: instead of criterion's groups, which measure the pipeline and
/// the floor one after the other, alternate short runs of each (40 rounds of about 20 ms) and
/// print both medians and their ratio. This machine's speed drifts by 10-30% within minutes;
/// interleaving exposes both measurements to the same drift.
fn interleaved<A, B>(size: usize, mut pipeline: impl FnMut() -> A, mut floor: impl FnMut() -> B) {
    let iterations = if size > 4096 { 150 } else { 4000 };
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
    };
    let (mut p, mut h) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        p.push(time(&mut || drop(black_box(pipeline()))));
        h.push(time(&mut || drop(black_box(floor()))));
    }
    p.sort_by(f64::total_cmp);
    h.sort_by(f64::total_cmp);
    let (pm, hm) = (p[p.len() / 2], h[h.len() / 2]);
    println!(
        "intake/{size} interleaved medians: pipeline {pm:.2} µs, HMAC floor {hm:.2} µs, ratio {:.2} \
         (fastest rounds: {:.2} / {:.2} µs)",
        pm / hm,
        p[0],
        h[0]
    );
}

fn pipeline(c: &mut Criterion) {
    let intake = intake_with(DiscardingQueue);
    let serializing = intake_with(SerializingQueue);
    let mut group = c.benchmark_group("intake");
    for size in [2 * 1024, 64 * 1024] {
        let body = stripe_event(size);
        let headers = signed_headers(&body);
        let request = IntakeRequest {
            source_id: "src_bench",
            headers: &headers,
            body: &body,
            received_at_ms: NOW_MS,
            trace_id: None,
        };
        assert_eq!(
            run_ready(serializing.handle(&request)).status,
            202,
            "the benchmark must measure the accept path"
        );
        assert_eq!(
            run_ready(intake.handle(&request)).status,
            202,
            "the benchmark must measure the accept path"
        );
        eprintln!(
            "intake/{size}: {} heap allocations per request ({} with SQS serialization)",
            allocations(|| run_ready(intake.handle(&request))),
            allocations(|| run_ready(serializing.handle(&request))),
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("pipeline", size),
            &request,
            |b, request| b.iter(|| run_ready(intake.handle(black_box(request)))),
        );
        group.bench_with_input(
            BenchmarkId::new("pipeline_and_sqs_serialization", size),
            &request,
            |b, request| b.iter(|| run_ready(serializing.handle(black_box(request)))),
        );
        group.bench_with_input(
            BenchmarkId::new("identify_json_only", size),
            &body,
            |b, body| b.iter(|| Provider::Stripe.identify(&headers, black_box(body))),
        );
        // A pointer tenant (Stripe Connect's /account, Whop's /company_id) reads one string of
        // the payload; against it, what reading it through a serde_json::Value tree costs.
        let by_pointer = TenantRule::Pointer("/data/object/customer".into());
        assert!(by_pointer.resolve(&body).is_some());
        group.bench_with_input(
            BenchmarkId::new("tenant_pointer", size),
            &body,
            |b, body| b.iter(|| by_pointer.resolve(black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("tenant_pointer_via_value_tree", size),
            &body,
            |b, body| {
                b.iter(|| {
                    serde_json::from_slice::<serde_json::Value>(black_box(body))
                        .ok()
                        .and_then(|v| {
                            CompanyId::parse(v.pointer("/data/object/customer")?.as_str()?).ok()
                        })
                })
            },
        );
        if std::env::var_os("INLET_BENCH_INTERLEAVED").is_some() {
            interleaved(
                size,
                || run_ready(intake.handle(black_box(&request))),
                || hmac_floor(&body),
            );
            continue;
        }
        group.bench_with_input(
            BenchmarkId::new("hmac_sha256_floor", size),
            &body,
            |b, body| b.iter(|| hmac_floor(body)),
        );
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
