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
