//! Adapters: the ports of inlet-webhooks and inlet-domain, implemented on AWS (DynamoDB, SQS,
//! SES) and on outbound HTTP.
//!
//! **Architecture invariant:** adapters store, fetch and send; they decide no business rule
//! (what a status code means, whether a tenant exists, when to retry is decided above them).

pub mod aws;
pub mod http;
