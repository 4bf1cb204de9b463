-- The scrape source's baselines: per node (`cell/node`), the counter reading (JSON) that the
-- recorded slices reach. The leader records a scrape's slices and moves its nodes' baselines in
-- one transaction, and only if no engine moved them meanwhile (generation): an increase is
-- recorded exactly once, by this leader's next successful write or by the next leader.
CREATE TABLE IF NOT EXISTS scrape_baselines (
    node       TEXT NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL, -- Unix seconds of the reading
    generation BIGINT NOT NULL, -- bumped on every move
    reading    TEXT NOT NULL
);
