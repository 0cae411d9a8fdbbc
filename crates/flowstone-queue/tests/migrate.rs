//! The migration runner's checksums, on SQLite and PostgreSQL: an applied migration whose
//! SQL changed is refused by name, an untouched database migrates again without effect, and
//! rows recorded before checksums existed get theirs.

mod common;

use common::{exec, scalar};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{Engine, Error, Migration, Migrator};

flowstone_queue::both_engines!(
    edited_migration_is_refused_naming_it,
    untouched_database_migrates_twice,
    old_row_without_checksum_is_filled_in,
);

const WIDGETS_SQLITE: &str = "CREATE TABLE widgets (id INTEGER PRIMARY KEY)";
const WIDGETS_PG: &str = "CREATE TABLE widgets (id bigint PRIMARY KEY)";

/// Version 1 as first shipped.
static ORIGINAL: Migrator = Migrator::new(
    "widgets",
    &[Migration {
        version: 1,
        name: "widgets table",
        sqlite: WIDGETS_SQLITE,
        postgres: WIDGETS_PG,
    }],
);

/// The same version 1, edited after it shipped.
static EDITED: Migrator = Migrator::new(
    "widgets",
    &[Migration {
        version: 1,
        name: "widgets table",
        sqlite: "CREATE TABLE widgets (id INTEGER PRIMARY KEY, colour TEXT)",
        postgres: "CREATE TABLE widgets (id bigint PRIMARY KEY, colour text)",
    }],
);

async fn edited_migration_is_refused_naming_it(t: &TestDb) {
    assert_eq!(ORIGINAL.run(&t.db).await.unwrap(), vec![1]);
    let err = EDITED.run(&t.db).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::MigrationChanged { component, version: 1, name, .. }
                if component == "widgets" && name == "widgets table"
        ),
        "unexpected error: {err:?}"
    );
    let message = err.to_string();
    for part in ["widgets v1", "`widgets table`", "new migration"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

async fn untouched_database_migrates_twice(t: &TestDb) {
    assert_eq!(ORIGINAL.run(&t.db).await.unwrap(), vec![1]);
    assert!(ORIGINAL.run(&t.db).await.unwrap().is_empty());
    let with_checksum = scalar(
        &t.db,
        "SELECT count(*) FROM flowstone_migrations \
         WHERE component = 'widgets' AND checksum IS NOT NULL",
    )
    .await;
    assert_eq!(with_checksum, 1);
}

async fn old_row_without_checksum_is_filled_in(t: &TestDb) {
    // A database migrated before checksums existed: the old table layout, v1 recorded.
    let old_table = match t.engine() {
        Engine::Sqlite => {
            "CREATE TABLE flowstone_migrations (
                component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                PRIMARY KEY (component, version))"
        }
        Engine::Postgres => {
            "CREATE TABLE flowstone_migrations (
                component text NOT NULL, version bigint NOT NULL, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version))"
        }
    };
    exec(&t.db, old_table).await;
    let widgets = match t.engine() {
        Engine::Sqlite => WIDGETS_SQLITE,
        Engine::Postgres => WIDGETS_PG,
    };
    exec(&t.db, widgets).await;
    exec(
        &t.db,
        "INSERT INTO flowstone_migrations (component, version, name) \
         VALUES ('widgets', 1, 'widgets table')",
    )
    .await;

    assert!(
        ORIGINAL.run(&t.db).await.unwrap().is_empty(),
        "v1 is not re-applied"
    );
    let recorded = scalar(
        &t.db,
        "SELECT count(*) FROM flowstone_migrations \
         WHERE component = 'widgets' AND version = 1 AND checksum IS NOT NULL",
    )
    .await;
    assert_eq!(recorded, 1, "the checksum is recorded");
    // What was recorded is the shipped SQL's checksum: an edit is now noticed.
    assert!(matches!(
        EDITED.run(&t.db).await,
        Err(Error::MigrationChanged { version: 1, .. })
    ));
    assert!(ORIGINAL.run(&t.db).await.unwrap().is_empty());
}
