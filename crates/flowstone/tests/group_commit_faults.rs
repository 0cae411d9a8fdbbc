//! One row the database refuses fails only its own materialization: a group commit the
//! database rejects is written again row by row. On SQLite and PostgreSQL.

mod common;

use flowstone::{Asset, Error, Partition, Run, Strategy};
use flowstone_queue::testing::TestDb;

use common::numbered;
use common::queue::connect;

/// Makes the database refuse every materialization record of asset `poison`.
async fn refuse_poison_records(test: &TestDb) {
    let statements: &[&str] = match test.engine() {
        flowstone_queue::Engine::Sqlite => &["CREATE TRIGGER poison BEFORE INSERT ON \
             flowstone_materializations WHEN NEW.asset = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poison row refused'); END"],
        flowstone_queue::Engine::Postgres => &[
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.asset = 'poison' THEN RAISE EXCEPTION 'poison row refused'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE INSERT ON flowstone_materializations \
             FOR EACH ROW EXECUTE FUNCTION poison()",
        ],
    };
    for sql in statements {
        match test.db.pool() {
            flowstone_queue::Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(p)
                .await
                .map(drop),
            flowstone_queue::Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(p)
                .await
                .map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn one_refused_row_fails_only_its_materialization(test: &TestDb) {
    let fs = connect(
        test,
        vec![
            Asset::new("good")
                .partitioned_by(numbered())
                .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().int()?) }),
            Asset::new("poison").execute(|_ctx| async { Ok::<_, Error>(0u8) }),
        ],
    )
    .await;
    refuse_poison_records(test).await;
    // Many materializations at once, so their writes share group commits with the poison's.
    let good = (0..256).map(|i| {
        let fs = fs.clone();
        async move {
            fs.materialize(
                "good",
                Run::partition(Partition::Int(i)).executor(Strategy::Sync),
            )
            .await
        }
    });
    let poison = fs.materialize("poison", Run::unpartitioned().executor(Strategy::Sync));
    let (good, poison) = tokio::join!(futures_util::future::join_all(good), poison);
    let err = poison.expect_err("the poison record is refused");
    assert!(err.to_string().contains("poison row refused"), "{err}");
    for (i, result) in good.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("good partition {i} failed with the poison: {e}"));
    }
    assert_eq!(common::records(&fs, "good").await.len(), 256);
}

flowstone_queue::both_engines!(one_refused_row_fails_only_its_materialization);
