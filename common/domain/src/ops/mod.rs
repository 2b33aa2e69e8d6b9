//! Operations: dead letters sorted by cause, the hourly digest, the watchdog, retention and the
//! crons' own state. Cross-tenant work goes through the narrow SECURITY DEFINER functions of
//! migration 011, as `inlet_ops`.

pub mod dead_letters;
pub mod digest;
pub mod replay;
pub mod retention;
pub mod state;
pub mod watchdog;
