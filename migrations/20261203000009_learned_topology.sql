-- Links learned by `topology: learn`: per cell, the node pairs seen linked and healthy over the
-- first `health.learn_for`. Written once per cell by the leader; read at start by every engine.
CREATE TABLE IF NOT EXISTS learned_links (
    cell       TEXT NOT NULL,
    node_a     TEXT NOT NULL,
    node_b     TEXT NOT NULL,
    learned_at BIGINT NOT NULL, -- Unix seconds
    PRIMARY KEY (cell, node_a, node_b)
);
