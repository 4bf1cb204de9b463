-- How far a query source (the `prometheus` source) has recorded: every sample up to `upto`
-- (Unix milliseconds) is in the slices. Written in the same transaction as the slices, so a
-- restart neither skips nor repeats a sample, and a start backfills from here.
CREATE TABLE IF NOT EXISTS source_cursors (
    source TEXT NOT NULL PRIMARY KEY,
    upto   BIGINT NOT NULL
);
