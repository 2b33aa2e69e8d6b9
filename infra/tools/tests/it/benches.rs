//! The benchmarks measure what is deployed.

#[test]
fn bench_process_batches_records_as_the_template_delivers_them_to_process_events() {
    let template: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(crate::root().join("template.yaml")).unwrap(),
    )
    .expect("template.yaml parses");
    let batch_size = &template["Resources"]["ProcessEventsFunction"]["Properties"]["Events"]
        ["Events"]["Properties"]["BatchSize"];
    assert_eq!(
        batch_size.as_u64(),
        Some(u64::from(inlet_tools::pgbench::PROCESS_BATCH_SIZE)),
        "template.yaml's BatchSize for process-events and bench-process's default differ"
    );
}
