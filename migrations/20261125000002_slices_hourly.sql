-- Hourly rollup of `slices`, written in the same transaction: long windows (1d, 3d, the period)
-- are summed from these rows, aligned to the hour, so an evaluation never reads a month of
-- minute rows.
CREATE TABLE IF NOT EXISTS slices_hourly (
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

-- Existing minute rows, rolled up once.
INSERT INTO slices_hourly (cell, slo, start, good, total, tokens, joules, requests)
SELECT cell, slo, start - (start % 3600), SUM(good), SUM(total), SUM(tokens), SUM(joules), SUM(requests)
FROM slices GROUP BY cell, slo, start - (start % 3600)
ON CONFLICT (cell, slo, start) DO NOTHING;

CREATE INDEX IF NOT EXISTS slices_hourly_by_start ON slices_hourly (start);
