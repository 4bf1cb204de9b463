-- One row per cell, SLO and time slice: what the slice recorded. Portable SQL: the same
-- migration runs on SQLite (the embedded default) and PostgreSQL (for HA).
-- slo = '' holds the cell's own totals (tokens, energy, requests) for efficiency figures.
CREATE TABLE IF NOT EXISTS slices (
    cell     TEXT NOT NULL,
    slo      TEXT NOT NULL,
    start    BIGINT NOT NULL,
    good     DOUBLE PRECISION NOT NULL DEFAULT 0,
    total    DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokens   DOUBLE PRECISION NOT NULL DEFAULT 0,
    joules   DOUBLE PRECISION NOT NULL DEFAULT 0,
    requests DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (cell, slo, start)
);

CREATE INDEX IF NOT EXISTS slices_by_start ON slices (start);
