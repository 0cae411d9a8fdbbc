//! FlowStone's schema, recorded under the component `flowstone` in the
//! `flowstone_migrations` table that flowstone-queue's migration runner keeps.

use flowstone_queue::{Migration, Migrator};

/// Applies FlowStone's migrations.
pub(crate) const MIGRATOR: Migrator = Migrator::new("flowstone", MIGRATIONS);

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "materializations, lineage, outputs",
    sqlite: V1_SQLITE,
    postgres: V1_POSTGRES,
}];

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
