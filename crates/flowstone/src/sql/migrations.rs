//! FlowStone's schema, recorded under the component `flowstone` in the
//! `flowstone_migrations` table that flowstone-queue's migration runner keeps.
//!
//! A migration's text never changes once released (databases record what they applied); a
//! change of schema is a new migration that converts existing rows in place.

use flowstone_queue::{Migration, Migrator};

/// Applies FlowStone's migrations.
pub(crate) const MIGRATOR: Migrator = Migrator::new("flowstone", MIGRATIONS);

/// FlowStone's schema steps in version order, as [`super::migrate`] applies them under the
/// component `flowstone`: for tools that report the schema, and for tests that need a database
/// at an earlier version (`Migrator::new("flowstone", &MIGRATIONS[..1])`).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "materializations, lineage, outputs",
        sqlite: V1_SQLITE,
        postgres: V1_POSTGRES,
    },
    Migration {
        version: 2,
        name: "times as timestamptz and JSON as jsonb on PostgreSQL; *_us times renamed *_at",
        sqlite: V2_SQLITE,
        postgres: V2_POSTGRES,
    },
    Migration {
        version: 3,
        name: "records carry the backfill they ran for",
        sqlite: V3,
        postgres: V3,
    },
    Migration {
        version: 4,
        name: "backfills and their partitions' outcomes",
        sqlite: V4_SQLITE,
        postgres: V4_POSTGRES,
    },
    Migration {
        version: 5,
        name: "automation switches",
        sqlite: V5_SQLITE,
        postgres: V5_POSTGRES,
    },
    Migration {
        version: 6,
        name: "automation cursors, launches and ticks; records by finish time, by asset and time, by status and time",
        sqlite: V6_SQLITE,
        postgres: V6_POSTGRES,
    },
];

/// What automation remembers between evaluations and across leaders: a cursor per schedule,
/// sensor or condition; one row per launch key (the key is launched once, ever: the row
/// names the backfill that launched it); and the tick records, pruned by age. Conditions find
/// new materializations by their finish time; the dashboard's overview finds each asset's
/// newest record and the recent failures by the other two indexes.
const V6_SQLITE: &str = "
CREATE TABLE flowstone_automation_cursors (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE flowstone_automation_launches (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    launch_key TEXT NOT NULL,
    backfill_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name, launch_key)
);
CREATE TABLE flowstone_automation_ticks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    at BIGINT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    launched BIGINT NOT NULL,
    backfills TEXT NOT NULL
);
CREATE INDEX flowstone_automation_ticks_by_name ON flowstone_automation_ticks (kind, name, id);
CREATE INDEX flowstone_automation_ticks_by_time ON flowstone_automation_ticks (at);
CREATE INDEX flowstone_materializations_by_finish ON flowstone_materializations (status, finished_at);
CREATE INDEX flowstone_materializations_by_asset_time
    ON flowstone_materializations (asset, started_at DESC, run_id DESC);
CREATE INDEX flowstone_materializations_by_status_time
    ON flowstone_materializations (status, started_at DESC);
";

const V6_POSTGRES: &str = "
CREATE TABLE flowstone_automation_cursors (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE flowstone_automation_launches (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    launch_key TEXT NOT NULL,
    backfill_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name, launch_key)
);
CREATE TABLE flowstone_automation_ticks (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    launched BIGINT NOT NULL,
    backfills JSONB NOT NULL
);
CREATE INDEX flowstone_automation_ticks_by_name ON flowstone_automation_ticks (kind, name, id);
CREATE INDEX flowstone_automation_ticks_by_time ON flowstone_automation_ticks (at);
CREATE INDEX flowstone_materializations_by_finish ON flowstone_materializations (status, finished_at);
CREATE INDEX flowstone_materializations_by_asset_time
    ON flowstone_materializations (asset, started_at DESC, run_id DESC);
CREATE INDEX flowstone_materializations_by_status_time
    ON flowstone_materializations (status, started_at DESC);
";

/// Whether each schedule (kind `schedule`) or, later, sensor is on; absent means the
/// definition's default.
const V5_SQLITE: &str = "
CREATE TABLE flowstone_automation_state (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
";

const V5_POSTGRES: &str = "
CREATE TABLE flowstone_automation_state (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name)
);
";

/// Backfills as persisted objects: the request as JSON (a range by its ends), the status and
/// counts, and one row per ended (asset, partition). Outcomes page by (asset, partition key)
/// in byte order on both engines.
const V4_SQLITE: &str = "
CREATE TABLE flowstone_backfills (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    owner TEXT
);
CREATE TABLE flowstone_backfill_outcomes (
    backfill_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (backfill_id, asset, partition_key)
);
";

const V4_POSTGRES: &str = r#"
CREATE TABLE flowstone_backfills (
    id TEXT PRIMARY KEY,
    request JSONB NOT NULL,
    status TEXT NOT NULL,
    counts JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    owner TEXT
);
CREATE TABLE flowstone_backfill_outcomes (
    backfill_id TEXT NOT NULL,
    asset TEXT COLLATE "C" NOT NULL,
    partition_key TEXT COLLATE "C" NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (backfill_id, asset, partition_key)
);
"#;

/// The backfill id of a record (NULL for runs outside backfills), indexed for the backfills
/// that look up their own records.
const V3: &str = "
ALTER TABLE flowstone_materializations ADD COLUMN backfill_id TEXT;
CREATE INDEX flowstone_materializations_backfill ON flowstone_materializations (backfill_id)
    WHERE backfill_id IS NOT NULL;
";

macro_rules! v1 {
    ($blob:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS flowstone_materializations (
                asset TEXT NOT NULL,
                partition_key TEXT NOT NULL,
                run_id TEXT NOT NULL,
                status TEXT NOT NULL,
                executor TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                started_us BIGINT NOT NULL,
                finished_us BIGINT,
                duration_us BIGINT,
                error TEXT,
                metadata TEXT NOT NULL,
                PRIMARY KEY (asset, partition_key, run_id)
            );
            CREATE INDEX IF NOT EXISTS flowstone_materializations_newest
                ON flowstone_materializations (asset, partition_key, started_us DESC, run_id DESC);
            CREATE INDEX IF NOT EXISTS flowstone_materializations_run
                ON flowstone_materializations (run_id);
            CREATE TABLE IF NOT EXISTS flowstone_lineage (
                consumer_asset TEXT NOT NULL,
                consumer_partition TEXT NOT NULL,
                consumer_run TEXT NOT NULL,
                upstream_asset TEXT NOT NULL,
                upstream_partition TEXT NOT NULL,
                upstream_run TEXT NOT NULL,
                recorded_us BIGINT NOT NULL,
                PRIMARY KEY (consumer_asset, consumer_partition, consumer_run,
                             upstream_asset, upstream_partition, upstream_run)
            );
            CREATE INDEX IF NOT EXISTS flowstone_lineage_upstream
                ON flowstone_lineage (upstream_asset, upstream_partition, upstream_run);
            CREATE TABLE IF NOT EXISTS flowstone_outputs (
                asset TEXT NOT NULL,
                partition_key TEXT NOT NULL,
                run_id TEXT NOT NULL,
                stored_us BIGINT NOT NULL,
                size_bytes BIGINT NOT NULL,
                value ",
            $blob,
            " NOT NULL,
                PRIMARY KEY (asset, partition_key)
            );"
        )
    };
}

const V1_SQLITE: &str = v1!("BLOB");
const V1_POSTGRES: &str = v1!("BYTEA");

/// SQLite keeps INTEGER microseconds and TEXT JSON; only the names change, to the queue's
/// `*_at` (renaming a column rewrites no row, and the indexes follow it).
const V2_SQLITE: &str = "
ALTER TABLE flowstone_materializations RENAME COLUMN started_us TO started_at;
ALTER TABLE flowstone_materializations RENAME COLUMN finished_us TO finished_at;
ALTER TABLE flowstone_lineage RENAME COLUMN recorded_us TO recorded_at;
ALTER TABLE flowstone_outputs RENAME COLUMN stored_us TO stored_at;
";

/// PostgreSQL: the same renames, then each table rewritten once with `timestamptz` times and
/// `jsonb` JSON, as the queue's tables have them (durations stay `duration_us`, bigint µs).
///
/// Microseconds become a time exactly: whole seconds and the remaining microseconds are added
/// separately, so no value passes through a float that could round it. jsonb cannot hold the
/// escape `\u0000` (text cannot hold NUL), so it is stored as U+FFFD, as new writes do.
const V2_POSTGRES: &str = r"
ALTER TABLE flowstone_materializations RENAME COLUMN started_us TO started_at;
ALTER TABLE flowstone_materializations RENAME COLUMN finished_us TO finished_at;
ALTER TABLE flowstone_materializations
    ALTER COLUMN started_at TYPE timestamptz USING timestamptz 'epoch'
        + (started_at / 1000000) * interval '1 second'
        + (started_at % 1000000) * interval '1 microsecond',
    ALTER COLUMN finished_at TYPE timestamptz USING timestamptz 'epoch'
        + (finished_at / 1000000) * interval '1 second'
        + (finished_at % 1000000) * interval '1 microsecond',
    ALTER COLUMN error TYPE jsonb USING replace(error, '\u0000', '\ufffd')::jsonb,
    ALTER COLUMN metadata TYPE jsonb USING replace(metadata, '\u0000', '\ufffd')::jsonb;
ALTER TABLE flowstone_lineage RENAME COLUMN recorded_us TO recorded_at;
ALTER TABLE flowstone_lineage
    ALTER COLUMN recorded_at TYPE timestamptz USING timestamptz 'epoch'
        + (recorded_at / 1000000) * interval '1 second'
        + (recorded_at % 1000000) * interval '1 microsecond';
ALTER TABLE flowstone_outputs RENAME COLUMN stored_us TO stored_at;
ALTER TABLE flowstone_outputs
    ALTER COLUMN stored_at TYPE timestamptz USING timestamptz 'epoch'
        + (stored_at / 1000000) * interval '1 second'
        + (stored_at % 1000000) * interval '1 microsecond';
";
