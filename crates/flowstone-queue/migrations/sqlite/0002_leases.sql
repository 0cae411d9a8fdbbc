-- flowstone-queue v2 (SQLite): leader leases. One row per lease name, held by one node until
-- `expires_at` (INTEGER microseconds since the Unix epoch) unless its holder renews it.
CREATE TABLE flowstone_leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
