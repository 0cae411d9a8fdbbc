-- flowstone-queue v3 (SQLite): each node records the queues it works (a JSON array), so a
-- client can tell whether a live worker serves a queue before it waits on one.
ALTER TABLE flowstone_nodes ADD COLUMN queues TEXT NOT NULL DEFAULT '[]';
