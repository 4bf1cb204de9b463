//! Small pure helpers every layer may use: time, secrets, URL redaction, digests, PromQL text,
//! the names of the trace spans and attributes.

pub mod promql;
pub mod redact;
pub mod secret;
pub mod text;
pub mod time;
pub mod trace;
