-- flowstone-queue v4 (PostgreSQL): which job kinds are served on which queue, and when a live
-- worker last did. Workers claim only the kinds they have handlers for and refresh their rows
-- with every heartbeat; the leader discards a job only when no worker has served its kind on
-- its queue for `unserved_kind_after`. Pending jobs count as served now, so an upgrade gives
-- every existing job the full limit.
CREATE TABLE flowstone_kinds (
    queue      text        NOT NULL,
    kind       text        NOT NULL,
    served_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, kind)
);
INSERT INTO flowstone_kinds (queue, kind)
     SELECT DISTINCT queue, kind FROM flowstone_jobs
      WHERE state IN ('available', 'scheduled', 'executing', 'retryable');
