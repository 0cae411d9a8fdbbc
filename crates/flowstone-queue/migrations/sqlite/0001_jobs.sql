-- flowstone-queue v1 (SQLite): the jobs table, its partial indexes and the node heartbeat
-- table. Timestamps are INTEGER microseconds since the Unix epoch (they sort and compare
-- exactly); JSON columns are TEXT.
CREATE TABLE flowstone_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    args          TEXT    NOT NULL DEFAULT '{}',
    meta          TEXT    NOT NULL DEFAULT '{}',
    priority      INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    state         TEXT    NOT NULL DEFAULT 'available'
                  CHECK (state IN ('available', 'scheduled', 'executing', 'retryable',
                                   'completed', 'discarded', 'cancelled')),
    attempt       INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    snoozed       INTEGER NOT NULL DEFAULT 0,
    unhandled     INTEGER NOT NULL DEFAULT 0,
    errors        TEXT    NOT NULL DEFAULT '[]',
    result        TEXT,
    unique_key    TEXT,
    batch         TEXT,
    node          TEXT,
    inserted_at   INTEGER NOT NULL,
    scheduled_at  INTEGER NOT NULL,
    attempted_at  INTEGER,
    completed_at  INTEGER,
    cancelled_at  INTEGER,
    discarded_at  INTEGER
);

CREATE INDEX flowstone_jobs_fetch ON flowstone_jobs (queue, priority, scheduled_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
CREATE UNIQUE INDEX flowstone_jobs_unique ON flowstone_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable');
CREATE INDEX flowstone_jobs_executing ON flowstone_jobs (node) WHERE state = 'executing';
CREATE INDEX flowstone_jobs_batch ON flowstone_jobs (batch) WHERE batch IS NOT NULL;

CREATE TABLE flowstone_nodes (
    node          TEXT PRIMARY KEY,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);
