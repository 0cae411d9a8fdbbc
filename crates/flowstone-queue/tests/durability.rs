//! Durable by default: a handle's connections commit so that what returned Ok survives power
//! loss (SQLite `synchronous = FULL`, PostgreSQL's `synchronous_commit` left on), unless the
//! URL parameter `durability=relaxed` or `ConnectOptions::durability` asks for speed instead.
//! Read back from the connections the pool hands out, on both engines.

use flowstone_queue::testing::TestDb;
use flowstone_queue::{ConnectOptions, Database, Durability, Error, Pool};

flowstone_queue::both_engines!(
    durable_unless_relaxed_by_url_or_options,
    a_bad_durability_is_refused_naming_it,
);

/// `true` when the pool's connections wait for the disk at commit.
async fn commits_wait_for_the_disk(db: &Database) -> bool {
    match db.pool() {
        Pool::Sqlite(p) => {
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(p)
                .await
                .unwrap();
            // 1 = NORMAL, 2 = FULL.
            assert!(matches!(level, 1 | 2), "synchronous = {level}");
            level == 2
        }
        Pool::Postgres(p) => {
            let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(p)
                .await
                .unwrap();
            setting != "off"
        }
    }
}

async fn durable_unless_relaxed_by_url_or_options(t: &TestDb) {
    assert!(
        commits_wait_for_the_disk(&t.db).await,
        "the default is durable"
    );
    let relaxed_url = format!("{}?durability=relaxed", t.url());
    let by_url = Database::connect(&relaxed_url).await.unwrap();
    assert!(!commits_wait_for_the_disk(&by_url).await);
    let relaxed = ConnectOptions {
        durability: Durability::Relaxed,
        ..ConnectOptions::default()
    };
    let by_options = Database::connect_with(t.url(), relaxed.clone())
        .await
        .unwrap();
    assert!(!commits_wait_for_the_disk(&by_options).await);
    // The URL wins over the options.
    let full_url = format!("{}?durability=full", t.url());
    let url_wins = Database::connect_with(&full_url, relaxed).await.unwrap();
    assert!(commits_wait_for_the_disk(&url_wins).await);
    // A relaxed handle still runs the queue.
    let q = flowstone_queue::Queue::new(by_url);
    q.migrate().await.unwrap();
    let job = q
        .insert(flowstone_queue::NewJob::new("k", serde_json::json!(1)))
        .await
        .unwrap();
    assert_eq!(q.get(job.job.id).await.unwrap().id, job.job.id);
}

async fn a_bad_durability_is_refused_naming_it(t: &TestDb) {
    let url = format!("{}?durability=sometimes", t.url());
    let err = Database::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::BadUrl { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("`sometimes`"), "{message}");
    assert!(
        message.contains("`full`") && message.contains("`relaxed`"),
        "{message}"
    );
}
