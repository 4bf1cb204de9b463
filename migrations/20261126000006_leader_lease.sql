-- High availability: engines sharing one database elect a leader with a lease. Only the leader
-- records slices, judges time slices, evaluates alerts and delivers notifications; the others
-- stand by and take over when the lease expires. Outbox rows are claimed before delivery (with
-- FOR UPDATE SKIP LOCKED on PostgreSQL), so two deliverers never send the same row at once.
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL -- Unix milliseconds
);

ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
