-- Alerting: the state machine's state (one JSON document: alerts and notification groups) and
-- the durable outbox. A state change and the notifications it causes are written in one
-- transaction; delivery workers send each outbox row until it is delivered, with backoff, across
-- restarts. `key` is the idempotency key receivers dedup on.
CREATE TABLE IF NOT EXISTS alert_state (
    id    INTEGER NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    at    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    key          TEXT NOT NULL PRIMARY KEY,
    receiver     TEXT NOT NULL,
    integration  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    last_error   TEXT
);

CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_attempt);
