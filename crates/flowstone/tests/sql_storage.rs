//! The store, lineage and IO suites on SQLite and on the real PostgreSQL server, each test in a
//! database of its own (the memory implementations run the same suites in the crate's unit tests).

use flowstone::sql::{SqlBlobIo, SqlLineage, SqlStore, migrate};
use flowstone::testing::{io_suite, lineage_suite, store_suite};
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
