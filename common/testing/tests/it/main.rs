//! The library's integration suite: every layer against the real local services (`make test`
//! starts them). One test binary for all of it: it links once.

mod api_keys;
mod audit_log;
mod batch_ledger;
mod connection;
mod consumer_aws;
mod intake;
mod intake_aws;
mod ledger;
mod migrations;
mod offboarding;
mod operations;
mod privacy;
mod process_events;
mod projection_fixtures;
mod reminders_ab;
mod reminders_flow;
mod roles;
mod schedule_reminders;
mod send_reminders;
mod stripe_recovery;
mod tenancy;
mod unstorable;
mod whop_clerk;
