-- Silences made through the API: matchers (JSON, Alertmanager's v2 form) and a time range.
-- Expiring one sets ends_at; rows are kept for the record.
CREATE TABLE IF NOT EXISTS silences (
    id         TEXT NOT NULL PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment    TEXT NOT NULL
);
