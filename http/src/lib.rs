//! cellwatch-http: what the exporter and the SLO engine both serve and call over HTTP.
//!
//! - [`tls`]: one TLS backend (ring) for every outbound client and the servers;
//! - [`web`]: `--web.config.file` (exporter-toolkit's format: TLS, basic authentication with
//!   bcrypt, headers) and the HTTP/1.1 server with its connection [`web::Limits`];
//! - [`exposition`]: samples encoded in the Prometheus text format, and its content type;
//! - [`file`]: reading user-named files of bounded size (regular files only);
//! - [`text`]: error-message helpers (quoted values, redacted deserialization errors);
//! - [`html`]: the HTML escape of landing pages, status pages and HTML mail.
//!
//! The exporter re-exports these modules at their old paths (`cellwatch_exporter::tls`, …).
//! This crate stays small: no collector, OTLP or plist dependency, so the engine builds without
//! the exporter.

pub mod exposition;
pub mod file;
pub mod html;
pub mod text;
pub mod tls;
pub mod web;
