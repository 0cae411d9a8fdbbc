-- flowstone-queue v2 (PostgreSQL): leader leases. One row per lease name, held by one node
-- until `expires_at` (the server's clock) unless its holder renews it.
CREATE TABLE flowstone_leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
