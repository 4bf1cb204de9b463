//! The names of the engine's trace spans and their attributes, in one place. Where an
//! OpenTelemetry semantic convention applies (`error.type`, `http.*`, `server.*`), its name is
//! used; the rest are `cellwatch.*`. The spans are `tracing` spans: `--otlp.endpoint` exports
//! them (the wiring is in `main` and `runtime::trace`); without it they cost nothing.

/// One evaluation of the engine's tick: read the source, evaluate, decide the alerts.
pub const EVALUATE: &str = "cellwatch.evaluate";
/// Child of [`EVALUATE`]: reading the source (scrape or Prometheus), recording when leading.
pub const READ_SOURCE: &str = "cellwatch.evaluate.read_source";
/// Child of [`EVALUATE`]: judging the new time slices (leader) and summing every window.
pub const JUDGE: &str = "cellwatch.evaluate.judge";
/// Child of [`EVALUATE`]: the alerts stepped, muted and routed, saved with their outbox rows.
pub const ALERTS: &str = "cellwatch.evaluate.alerts";
/// One delivery attempt of one outbox row (a client span: its `traceparent` goes out with the
/// HTTP request).
pub const DELIVER: &str = "cellwatch.deliver";

/// `leader` or `standby` (a standby evaluates and serves, but neither judges nor alerts).
pub const ENGINE_ROLE: &str = "cellwatch.engine.role";
/// The cells evaluated.
pub const CELLS: &str = "cellwatch.evaluation.cells";
/// The SLOs evaluated (each for every cell it covers).
pub const SLOS: &str = "cellwatch.evaluation.slos";
/// The notifications the evaluation queued (leader only).
pub const NOTIFICATIONS: &str = "cellwatch.evaluation.notifications";
/// How the evaluation or the delivery ended: [`EVALUATE`]: `ok`, `source_failed`,
/// `evaluation_failed`, `save_failed`, `lease_lost`; [`DELIVER`]: `delivered`, `failed`.
pub const OUTCOME: &str = "cellwatch.outcome";

/// The receiver's integration: `webhook`, `alertmanager`, `pagerduty`, `slack`, `email` or
/// `report`.
pub const RECEIVER_KIND: &str = "cellwatch.receiver.kind";
/// The receiver's name in the configuration.
pub const RECEIVER_NAME: &str = "cellwatch.receiver.name";
/// The cell the notification is about.
pub const CELL: &str = "cellwatch.cell";
/// The first alert's `alertname`.
pub const ALERT_NAME: &str = "cellwatch.alert.name";
/// The most severe `severity` among the alerts (`page` before the rest).
pub const ALERT_SEVERITY: &str = "cellwatch.alert.severity";
/// `firing` or `resolved`.
pub const NOTIFICATION_STATUS: &str = "cellwatch.notification.status";
/// The outbox row's idempotency key.
pub const NOTIFICATION_KEY: &str = "cellwatch.notification.key";
/// The attempt's number, 1 for the first.
pub const ATTEMPT: &str = "cellwatch.delivery.attempt";

/// Semantic conventions: the class of a failure (low cardinality: an HTTP status code, or
/// `timeout`, `connect`, `smtp`, `receiver_gone`...).
pub const ERROR_TYPE: &str = "error.type";
/// Semantic conventions: `POST`.
pub const HTTP_METHOD: &str = "http.request.method";
/// Semantic conventions: the receiver's HTTP status code.
pub const HTTP_STATUS: &str = "http.response.status_code";
/// Semantic conventions: the receiver's host (never its path or query: they may hold tokens).
pub const SERVER_ADDRESS: &str = "server.address";
/// Semantic conventions: the receiver's port.
pub const SERVER_PORT: &str = "server.port";

/// tracing-opentelemetry's field for the span's status code (`ERROR` on failures).
pub const STATUS_CODE: &str = "otel.status_code";
/// tracing-opentelemetry's field for the span's status message (an error status).
pub const STATUS_DESCRIPTION: &str = "otel.status_description";
