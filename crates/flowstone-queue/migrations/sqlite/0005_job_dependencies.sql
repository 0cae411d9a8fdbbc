-- flowstone-queue v5 (SQLite): jobs that wait for other jobs. A job inserted with upstream
-- jobs (`Queue::insert_graph`) waits as `scheduled` far in the future with `waiting_on` set to
-- how many of them have not completed; the transaction that completes an upstream job
-- decrements its dependents and makes available those that reach zero, and deletes the edges
-- it used, so a retried acknowledgement releases nothing twice. A discarded or cancelled
-- upstream job discards (or cancels) what waits for it, transitively.
ALTER TABLE flowstone_jobs ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
CREATE TABLE flowstone_job_deps (
    upstream_id    INTEGER NOT NULL,
    downstream_id  INTEGER NOT NULL,
    PRIMARY KEY (upstream_id, downstream_id)
) WITHOUT ROWID;
