//! Integration tests of the `inlet` CLI: the real binary against the local services.

mod cli;
mod console;
mod functions;
mod local;
mod operations;
mod tenant_api;
