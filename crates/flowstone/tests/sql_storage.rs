//! The store, lineage and IO suites on SQLite and on the real PostgreSQL server, each test in a
//! database of its own (the memory implementations run the same suites in the crate's unit tests).

use flowstone::sql::{SqlBlobIo, SqlLineage, SqlStore, migrate};
use flowstone::testing::{io_suite, lineage_suite, retention_suite, store_suite};
use flowstone_queue::testing::TestDb;

async fn sqlite() -> TestDb {
    let test = TestDb::sqlite().await;
    migrate(&test.db).await.expect("migrate SQLite");
    test
}

async fn postgres() -> Option<TestDb> {
    let test = TestDb::postgres().await?;
    migrate(&test.db).await.expect("migrate PostgreSQL");
    Some(test)
}

#[tokio::test]
async fn sqlite_store_passes_the_store_suite() {
    let test = sqlite().await;
    store_suite(&SqlStore::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_store_passes_the_store_suite() {
    let Some(test) = postgres().await else { return };
    store_suite(&SqlStore::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn sqlite_lineage_passes_the_lineage_suite() {
    let test = sqlite().await;
    lineage_suite(&SqlLineage::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_lineage_passes_the_lineage_suite() {
    let Some(test) = postgres().await else { return };
    lineage_suite(&SqlLineage::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn sqlite_store_and_lineage_pass_the_retention_suite() {
    let test = sqlite().await;
    let storage = flowstone::sql::SqlStorage::new(test.db.clone());
    retention_suite(&storage.store, &storage.lineage).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_store_and_lineage_pass_the_retention_suite() {
    let Some(test) = postgres().await else { return };
    let storage = flowstone::sql::SqlStorage::new(test.db.clone());
    retention_suite(&storage.store, &storage.lineage).await;
    test.cleanup().await;
}

#[tokio::test]
async fn sqlite_blob_io_passes_the_io_suite() {
    let test = sqlite().await;
    io_suite(&SqlBlobIo::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_blob_io_passes_the_io_suite() {
    let Some(test) = postgres().await else { return };
    io_suite(&SqlBlobIo::new(test.db.clone())).await;
    test.cleanup().await;
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let test = sqlite().await;
    migrate(&test.db)
        .await
        .expect("second migration is a no-op");
    test.cleanup().await;
}

/// A write the database rejects fails its callers with the reason, and leaves nothing open
/// behind it: once the cause is gone, the next write goes through (the table is renamed away
/// and back, which needs the write lock any half-finished transaction would still hold).
async fn rejected_write_fails_and_the_writer_recovers(test: &TestDb) {
    use flowstone::sql::SqlStorage;
    use flowstone::{IoManager, Output, Partition, RunId, io::IoMetadata};
    let storage = SqlStorage::new(test.db.clone());
    let meta = IoMetadata {
        run_id: RunId::new(),
        stored_at: chrono::Utc::now(),
        size_bytes: None,
    };
    rename_table(test, "flowstone_outputs", "flowstone_outputs_away").await;
    let err = storage
        .io
        .store("a", &Partition::Int(1), &Output::new(1u32), &meta)
        .await
        .expect_err("no outputs table");
    assert!(err.to_string().contains("flowstone_outputs"), "{err}");
    rename_table(test, "flowstone_outputs_away", "flowstone_outputs").await;
    storage
        .io
        .store("a", &Partition::Int(1), &Output::new(2u32), &meta)
        .await
        .expect("store after the table is back");
    let back = storage.io.load("a", &Partition::Int(1)).await.unwrap();
    assert_eq!(back.unwrap().output.value::<u32>().unwrap(), 2);
}

async fn rename_table(test: &TestDb, from: &str, to: &str) {
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    match test.db.pool() {
        flowstone_queue::Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(p)
            .await
            .map(drop),
        flowstone_queue::Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(p)
            .await
            .map(drop),
    }
    .unwrap_or_else(|e| panic!("rename {from} to {to}: {e}"));
}

/// Inside a materialization the writes' commits are awaited once, at its end: a commit that
/// fails there still fails the materialization, naming the cause, instead of being lost.
async fn failed_deferred_commit_fails_the_materialization(test: &TestDb) {
    use flowstone::{Asset, FlowStone, Run, Strategy};
    let fs = FlowStone::builder()
        .asset(Asset::new("seven").execute(|_ctx| async { Ok::<u64, flowstone::Error>(7) }))
        .database(test.url())
        .connect()
        .await
        .expect("connect");
    rename_table(test, "flowstone_outputs", "flowstone_outputs_away").await;
    let err = fs
        .materialize("seven", Run::unpartitioned().executor(Strategy::Sync))
        .await
        .expect_err("the output cannot be stored");
    assert!(err.to_string().contains("flowstone_outputs"), "{err}");
    rename_table(test, "flowstone_outputs_away", "flowstone_outputs").await;
    let value: u64 = fs
        .materialize("seven", Run::unpartitioned().executor(Strategy::Sync))
        .await
        .expect("materialize once the table is back")
        .value()
        .expect("typed");
    assert_eq!(value, 7);
}

#[tokio::test]
async fn sqlite_failed_deferred_commit_fails_the_materialization() {
    let test = sqlite().await;
    failed_deferred_commit_fails_the_materialization(&test).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_failed_deferred_commit_fails_the_materialization() {
    let Some(test) = postgres().await else { return };
    failed_deferred_commit_fails_the_materialization(&test).await;
    test.cleanup().await;
}

#[tokio::test]
async fn sqlite_rejected_write_fails_and_the_writer_recovers() {
    let test = sqlite().await;
    rejected_write_fails_and_the_writer_recovers(&test).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_rejected_write_fails_and_the_writer_recovers() {
    let Some(test) = postgres().await else { return };
    rejected_write_fails_and_the_writer_recovers(&test).await;
    test.cleanup().await;
}

/// A column value of a row written as schema version 1 wrote it.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Vec<u8>),
}

fn text(value: impl Into<String>) -> Cell {
    Cell::Text(Some(value.into()))
}

fn bind_cells<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, DB::Arguments>,
    cells: &[Cell],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Vec<u8>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    for cell in cells {
        q = match cell {
            Cell::Text(value) => q.bind(value.clone()),
            Cell::Int(value) => q.bind(*value),
            Cell::Bytes(value) => q.bind(value.clone()),
        };
    }
    q
}

async fn insert_row(test: &TestDb, table: &str, columns: &str, cells: &[Cell]) {
    let placeholders: Vec<String> = (1..=cells.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        placeholders.join(", ")
    );
    match test.db.pool() {
        flowstone_queue::Pool::Sqlite(p) => {
            bind_cells(sqlx::query(sqlx::AssertSqlSafe(sql)), cells)
                .execute(p)
                .await
                .map(drop)
        }
        flowstone_queue::Pool::Postgres(p) => {
            bind_cells(sqlx::query(sqlx::AssertSqlSafe(sql)), cells)
                .execute(p)
                .await
                .map(drop)
        }
    }
    .unwrap_or_else(|e| panic!("insert a version 1 row into {table}: {e}"));
}

fn micros(at: chrono::DateTime<chrono::Utc>) -> Cell {
    Cell::Int(Some(at.timestamp_micros()))
}

/// Records as schema version 1 held them (on both engines: times as integer microseconds, JSON
/// as text) read back identically once `migrate` has upgraded the database; so do their lineage
/// and outputs. Times before 1970 and with microseconds check that the conversion is exact.
async fn version_1_rows_read_back_identically_after_the_upgrade(test: &TestDb) {
    use flowstone::lineage::{LineageStore, MaterializationKey};
    use flowstone::sql::SqlStorage;
    use flowstone::store::{Materialization, MaterializationStatus, MaterializationStore};
    use flowstone::testing::awkward_partitions;
    use flowstone::{Error, IoManager, Output, Partition, RunId};

    flowstone_queue::Migrator::new("flowstone", &flowstone::sql::MIGRATIONS[..1])
        .run(&test.db)
        .await
        .expect("migrate to version 1");

    let base = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
    let mut expected = Vec::new();
    for (i, partition) in awkward_partitions().into_iter().enumerate() {
        let started_at = match i {
            0 => chrono::DateTime::from_timestamp_micros(-1).unwrap(),
            1 => chrono::DateTime::from_timestamp_micros(-1_000_001).unwrap(),
            _ => base + chrono::Duration::seconds(i as i64),
        };
        let failed = i % 3 == 1;
        let mut metadata = serde_json::Map::new();
        metadata.insert("rows".into(), serde_json::json!(i));
        metadata.insert(
            "nested".into(),
            serde_json::json!({"ünï": [1.5, -2, null, {"z": "a\"b\\c"}], "big": u64::MAX}),
        );
        expected.push(Materialization {
            asset: "migrated".into(),
            error: failed.then(|| {
                Error::permanent("bad row 7")
                    .in_context("migrated", &partition)
                    .to_record()
            }),
            partition,
            run_id: RunId::new(),
            status: if failed {
                MaterializationStatus::Failed
            } else {
                MaterializationStatus::Success
            },
            executor: "queue".into(),
            attempt: 2,
            started_at,
            finished_at: (i % 2 == 0).then(|| started_at + chrono::Duration::microseconds(1_500)),
            duration: (i % 2 == 0).then(|| std::time::Duration::from_micros(1_500)),
            metadata,
            // Version 1 had no backfill column; later versions read NULL for old rows.
            backfill_id: None,
        });
    }
    for m in &expected {
        insert_row(
            test,
            "flowstone_materializations",
            "asset, partition_key, run_id, status, executor, attempt, started_us, finished_us, \
             duration_us, error, metadata",
            &[
                text(&m.asset),
                text(m.partition.encode()),
                text(m.run_id.to_string()),
                text(m.status.as_str()),
                text(&m.executor),
                Cell::Int(Some(i64::from(m.attempt))),
                micros(m.started_at),
                Cell::Int(m.finished_at.map(|at| at.timestamp_micros())),
                Cell::Int(m.duration.map(|d| d.as_micros() as i64)),
                Cell::Text(m.error.as_ref().map(|e| serde_json::to_string(e).unwrap())),
                text(serde_json::to_string(&m.metadata).unwrap()),
            ],
        )
        .await;
    }
    let key = |m: &Materialization| MaterializationKey {
        asset: m.asset.clone(),
        partition: m.partition.clone(),
        run_id: m.run_id,
    };
    let (consumer, upstream) = (key(&expected[2]), key(&expected[7]));
    insert_row(
        test,
        "flowstone_lineage",
        "consumer_asset, consumer_partition, consumer_run, upstream_asset, upstream_partition, \
         upstream_run, recorded_us",
        &[
            text(&consumer.asset),
            text(consumer.partition.encode()),
            text(consumer.run_id.to_string()),
            text(&upstream.asset),
            text(upstream.partition.encode()),
            text(upstream.run_id.to_string()),
            micros(base),
        ],
    )
    .await;
    let value = Output::new(vec![String::from("ü"), String::from("\"")]);
    let bytes = value.to_json_bytes().unwrap();
    insert_row(
        test,
        "flowstone_outputs",
        "asset, partition_key, run_id, stored_us, size_bytes, value",
        &[
            text("migrated"),
            text(Partition::Int(-42).encode()),
            text(expected[2].run_id.to_string()),
            micros(base),
            Cell::Int(Some(bytes.len() as i64)),
            Cell::Bytes(bytes.clone()),
        ],
    )
    .await;

    migrate(&test.db)
        .await
        .expect("upgrade to the current schema");

    let storage = SqlStorage::new(test.db.clone());
    for m in &expected {
        let back = storage
            .store
            .get(&m.asset, &m.partition, m.run_id)
            .await
            .expect("read a migrated record")
            .expect("the migrated record is there");
        assert_eq!(&back, m, "{}", m.partition);
    }
    let mut listed = storage
        .store
        .list(&flowstone::store::MaterializationQuery::asset("migrated"))
        .await
        .expect("list migrated records");
    listed.sort_by_key(|m| m.run_id);
    let mut sorted = expected.clone();
    sorted.sort_by_key(|m| m.run_id);
    assert_eq!(listed, sorted);
    assert_eq!(
        storage
            .lineage
            .consumed_by(&consumer)
            .await
            .expect("lineage"),
        vec![upstream.clone()]
    );
    let stored = storage
        .io
        .load("migrated", &Partition::Int(-42))
        .await
        .expect("load the migrated output")
        .expect("the migrated output is there");
    assert_eq!(stored.meta.run_id, expected[2].run_id);
    assert_eq!(stored.meta.stored_at, base);
    assert_eq!(stored.meta.size_bytes, Some(bytes.len() as u64));
    assert_eq!(
        stored.output.value::<Vec<String>>().unwrap(),
        vec![String::from("ü"), String::from("\"")]
    );

    // Records written after the upgrade sit beside the converted ones.
    let mut fresh = expected[3].clone();
    fresh.run_id = RunId::new();
    fresh.started_at = base + chrono::Duration::days(1);
    storage
        .store
        .record(&fresh)
        .await
        .expect("record after the upgrade");
    assert_eq!(
        storage
            .store
            .latest("migrated", &fresh.partition)
            .await
            .expect("latest")
            .map(|m| m.run_id),
        Some(fresh.run_id)
    );

    match test.db.pool() {
        flowstone_queue::Pool::Postgres(pool) => {
            postgres_columns_read_as_timestamps_and_json(pool, &expected[2], &fresh).await;
        }
        flowstone_queue::Pool::Sqlite(pool) => {
            let kind: String = sqlx::query_scalar(
                "SELECT typeof(started_at) FROM flowstone_materializations LIMIT 1",
            )
            .fetch_one(pool)
            .await
            .expect("column type");
            assert_eq!(kind, "integer", "SQLite keeps integer microseconds");
        }
    }
}

/// What `psql` shows: times as timestamps, JSON as JSON, for converted and new rows alike.
async fn postgres_columns_read_as_timestamps_and_json(
    pool: &sqlx::PgPool,
    migrated: &flowstone::store::Materialization,
    fresh: &flowstone::store::Materialization,
) {
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query("SET TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await
        .expect("set the session's time zone");
    for (m, started) in [
        (migrated, "2023-11-14 22:13:22.123456+00"),
        (fresh, "2023-11-15 22:13:20.123456+00"),
    ] {
        let (started_at, rows, types): (String, String, String) = sqlx::query_as(
            "SELECT started_at::text, metadata->>'rows',
                    pg_typeof(started_at)::text || ' ' || pg_typeof(metadata)::text
             FROM flowstone_materializations WHERE run_id = $1",
        )
        .bind(m.run_id.to_string())
        .fetch_one(&mut *conn)
        .await
        .expect("read a record as psql does");
        assert_eq!(started_at, started);
        assert_eq!(rows, m.metadata["rows"].to_string());
        assert_eq!(types, "timestamp with time zone jsonb");
    }
    let times: (String, String, String) = sqlx::query_as(
        "SELECT (SELECT pg_typeof(finished_at)::text FROM flowstone_materializations LIMIT 1),
                (SELECT recorded_at::text FROM flowstone_lineage LIMIT 1),
                (SELECT stored_at::text FROM flowstone_outputs LIMIT 1)",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("read lineage and outputs as psql does");
    assert_eq!(
        times,
        (
            String::from("timestamp with time zone"),
            String::from("2023-11-14 22:13:20.123456+00"),
            String::from("2023-11-14 22:13:20.123456+00"),
        )
    );
    conn.close_on_drop();
}

#[tokio::test]
async fn sqlite_version_1_rows_read_back_identically_after_the_upgrade() {
    let test = TestDb::sqlite().await;
    version_1_rows_read_back_identically_after_the_upgrade(&test).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_version_1_rows_read_back_identically_after_the_upgrade() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    version_1_rows_read_back_identically_after_the_upgrade(&test).await;
    test.cleanup().await;
}

/// A NUL in a record's JSON does not fail the write (on PostgreSQL, where jsonb cannot hold
/// one, it becomes U+FFFD; SQLite keeps it), and so cannot fail the other writes of its batch.
async fn a_nul_in_json_is_stored(test: &TestDb) {
    use flowstone::store::{Materialization, MaterializationStatus, MaterializationStore};
    use flowstone::{Partition, RunId};
    let store = SqlStore::new(test.db.clone());
    let mut m = Materialization {
        asset: "nul".into(),
        partition: Partition::Unpartitioned,
        run_id: RunId::new(),
        status: MaterializationStatus::Success,
        executor: "sync".into(),
        attempt: 1,
        started_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
        finished_at: None,
        duration: None,
        error: None,
        metadata: serde_json::Map::new(),
        backfill_id: None,
    };
    m.metadata.insert("k\0".into(), serde_json::json!("a\0b"));
    store.record(&m).await.expect("a NUL in metadata is stored");
    let back = store
        .get(&m.asset, &m.partition, m.run_id)
        .await
        .expect("get")
        .expect("present");
    let kept = match test.engine() {
        flowstone_queue::Engine::Sqlite => serde_json::json!({"k\0": "a\0b"}),
        flowstone_queue::Engine::Postgres => serde_json::json!({"k\u{fffd}": "a\u{fffd}b"}),
    };
    assert_eq!(serde_json::Value::Object(back.metadata), kept);
}

#[tokio::test]
async fn sqlite_a_nul_in_json_is_stored() {
    let test = sqlite().await;
    a_nul_in_json_is_stored(&test).await;
    test.cleanup().await;
}

#[tokio::test]
async fn postgres_a_nul_in_json_is_stored() {
    let Some(test) = postgres().await else { return };
    a_nul_in_json_is_stored(&test).await;
    test.cleanup().await;
}
