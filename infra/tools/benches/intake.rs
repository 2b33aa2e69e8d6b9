//! Intake pipeline CPU per request, with in-memory ports, against HMAC-SHA256 alone (the floor
//! any verifier pays). Run: `cargo bench -p inlet-tools --bench intake`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inlet_core::CompanyId;
use inlet_tools::intake_fixture::{
    hmac_floor, intake_with, run_ready, signed_headers, stripe_event, DiscardingQueue,
    SerializingQueue, NOW_MS, SOURCE,
};
use inlet_webhooks::intake::{IntakeRequest, TenantRule};
use inlet_webhooks::providers::Provider;

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
            source_id: SOURCE,
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
