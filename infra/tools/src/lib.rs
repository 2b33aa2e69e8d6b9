//! Tools of the repository, not of the product: the fault-injection suite (`make chaos`), the
//! event-processing benchmark, the local stack's misbehaving fixture function, and (in
//! `tests/`) the checks that keep the layering and the provider table honest. Nothing deployed
//! and not the `inlet` CLI depends on this.

pub mod chaos;
pub mod intake_fixture;
pub mod pgbench;
pub mod samples;
pub mod timing;
