-- flowstone-queue v4 (SQLite): which job kinds are served on which queue, and when a live
-- worker last did (microseconds since the epoch). Workers claim only the kinds they have
-- handlers for and refresh their rows with every heartbeat; the leader discards a job only
-- when no worker has served its kind on its queue for `unserved_kind_after`. Pending jobs
-- count as served now, so an upgrade gives every existing job the full limit.
CREATE TABLE flowstone_kinds (
    queue      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    served_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, kind)
) WITHOUT ROWID;
INSERT INTO flowstone_kinds (queue, kind, served_at)
     SELECT DISTINCT queue, kind, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
       FROM flowstone_jobs
      WHERE state IN ('available', 'scheduled', 'executing', 'retryable');
