//! Integration tests of the `inlet` CLI: the real binary against the local services.

mod cli;
mod functions;
mod local;
mod operations;
mod tenant_api;
