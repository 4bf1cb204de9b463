-- Evaluation at scale (1,000 cells × 4 SLOs in well under a second):
-- * every query reads one SLO over time ranges: covering indexes on (slo, start, …) answer it
--   from the index alone;
-- * a daily rollup, so a 30-day period reads 30 rows per cell, plus the hours at its edges;
-- * judged time slices: when a time slice is complete, its verdict (good, or judged at all) is
--   added once to the hourly and daily rollups, so long windows of time-slice SLOs are sums too.
CREATE INDEX IF NOT EXISTS slices_by_slo
    ON slices (slo, start, cell, good, total, tokens, joules, requests);

ALTER TABLE slices_hourly ADD COLUMN judged_good DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE slices_hourly ADD COLUMN judged_total DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS slices_hourly_by_slo
    ON slices_hourly (slo, start, cell, good, total, tokens, joules, requests, judged_good, judged_total);

CREATE TABLE IF NOT EXISTS slices_daily (
    cell         TEXT NOT NULL,
    slo          TEXT NOT NULL,
    start        BIGINT NOT NULL,
    good         DOUBLE PRECISION NOT NULL DEFAULT 0,
    total        DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokens       DOUBLE PRECISION NOT NULL DEFAULT 0,
    joules       DOUBLE PRECISION NOT NULL DEFAULT 0,
    requests     DOUBLE PRECISION NOT NULL DEFAULT 0,
    judged_good  DOUBLE PRECISION NOT NULL DEFAULT 0,
    judged_total DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (cell, slo, start)
);
CREATE INDEX IF NOT EXISTS slices_daily_by_slo
    ON slices_daily (slo, start, cell, good, total, tokens, joules, requests, judged_good, judged_total);

-- Existing hourly rows, rolled up once (verdicts are judged again from the minute rows on the
-- next start: no judging cursor exists yet).
INSERT INTO slices_daily (cell, slo, start, good, total, tokens, joules, requests)
SELECT cell, slo, start - (start % 86400), SUM(good), SUM(total), SUM(tokens), SUM(joules), SUM(requests)
FROM slices_hourly GROUP BY cell, slo, start - (start % 86400)
ON CONFLICT (cell, slo, start) DO NOTHING;
