-- flowstone-queue v3 (PostgreSQL): each node records the queues it works, so a client can tell
-- whether a live worker serves a queue before it waits on one.
ALTER TABLE flowstone_nodes ADD COLUMN queues text[] NOT NULL DEFAULT '{}';
