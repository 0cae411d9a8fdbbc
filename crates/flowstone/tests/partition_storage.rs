//! Every valid partition can be stored everywhere: partitions whose strings hold control
//! characters (NUL, CR, LF, tab) are materialized, looked up and read back through the SQL
//! store, lineage, blob outputs and queue rows on SQLite and PostgreSQL; outputs holding NUL
//! come back unchanged through the queue executor.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use flowstone::partition::CustomPartitions;
use flowstone::store::{MaterializationQuery, MaterializationStatus};
use flowstone::{Asset, Direction, Error, FlowStone, Partition, Run, Strategy};
use flowstone_queue::WorkerHandle;
use flowstone_queue::testing::TestDb;

use common::queue::{connect, fast_settings, node};

/// A string partition with every control character PostgreSQL or a line-based format trips on.
fn controlled() -> Partition {
    Partition::Str("nul\0cr\rlf\ntab\t|:\\end".into())
}

/// The same string inside a two-dimensional partition, beside an ordinary dimension.
fn controlled_tuple() -> Partition {
    Partition::Tuple(vec![
        Partition::Int(7),
        controlled(),
        Partition::Str("\n".into()),
    ])
}

/// What `source` returns for `partition`: its text, control characters included (NUL, which
/// the queue does not carry yet, is tested on its own below).
fn source_value(partition: &Partition) -> String {
    format!("source of {partition:?} \r\n\t")
}

/// Both partitions above, as the assets' partition set.
fn controlled_partitions() -> CustomPartitions {
    CustomPartitions::new(|| Ok(vec![controlled(), controlled_tuple()]))
}

/// `source` returns a string naming its partition; `derived` reads it and appends to it.
fn assets() -> Vec<Asset> {
    vec![
        Asset::new("source")
            .partitioned_by(controlled_partitions())
            .execute(|ctx| async move { Ok::<String, Error>(source_value(ctx.partition())) }),
        Asset::new("derived")
            .partitioned_by(controlled_partitions())
            .depends_on(["source"])
            .execute(|ctx| async move {
                let source: String = ctx.dep("source")?;
                Ok::<String, Error>(format!("{source}\u{1}derived"))
            }),
    ]
}

async fn start_worker(fs: &FlowStone) -> WorkerHandle {
    fs.worker()
        .queue("assets", 2)
        .node(node("keys"))
        .settings(fast_settings())
        .start()
        .await
        .expect("worker starts")
}

/// Materializes `derived` (and `source` upstream of it) for `partition` with `strategy`, then
/// reads every record back by partition: records, lineage both ways, and the stored outputs.
async fn materialize_and_read_back(fs: &FlowStone, partition: &Partition, strategy: Strategy) {
    let run = Run::partition(partition.clone())
        .executor(strategy)
        .with_upstream(true);
    let out: String = fs
        .materialize("derived", run)
        .await
        .unwrap_or_else(|e| panic!("materialize {partition:?}: {e}"))
        .value()
        .expect("a string output");
    let expected = format!("{}\u{1}derived", source_value(partition));
    assert_eq!(out, expected);

    for asset in ["source", "derived"] {
        let found = fs
            .materializations(&MaterializationQuery::asset(asset).partition(partition.clone()))
            .await
            .expect("records of the partition");
        assert_eq!(found.len(), 1, "{asset} at {partition:?}: {found:?}");
        assert_eq!(&found[0].partition, partition);
        assert_eq!(found[0].status, MaterializationStatus::Success);
    }
    let listed = fs
        .materializations(&MaterializationQuery::asset("source"))
        .await
        .expect("records of source");
    assert!(
        listed.iter().any(|m| &m.partition == partition),
        "{listed:?}"
    );

    let upstream = fs
        .lineage("derived", partition.clone(), Direction::Upstream, 1)
        .await
        .expect("upstream lineage");
    assert_eq!(upstream.len(), 1, "{upstream:?}");
    assert_eq!(upstream[0].key.asset, "source");
    assert_eq!(&upstream[0].key.partition, partition);
    let downstream = fs
        .lineage("source", partition.clone(), Direction::Downstream, 1)
        .await
        .expect("downstream lineage");
    assert_eq!(downstream.len(), 1, "{downstream:?}");
    assert_eq!(downstream[0].key.asset, "derived");
    assert_eq!(&downstream[0].key.partition, partition);

    assert_eq!(
        fs.load::<String>("source", partition.clone())
            .await
            .expect("load source"),
        source_value(partition)
    );
    assert_eq!(
        fs.load::<String>("derived", partition.clone())
            .await
            .expect("load derived"),
        expected
    );
}

/// Records, lineage and outputs of partitions with control characters, run in process.
async fn control_characters_in_partitions_are_stored_and_found(db: &TestDb) {
    let fs = connect(db, assets()).await;
    for partition in [controlled(), controlled_tuple()] {
        materialize_and_read_back(&fs, &partition, Strategy::Sync).await;
    }
}

/// The same through the queue: the partition travels in the job row's arguments, and the
/// outputs come back from the worker unchanged.
async fn control_characters_in_partitions_go_through_the_queue(db: &TestDb) {
    let fs = connect(db, assets()).await;
    let worker = start_worker(&fs).await;
    for partition in [controlled(), controlled_tuple()] {
        materialize_and_read_back(&fs, &partition, Strategy::Queue).await;
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

/// An output with NUL in a string and in an object key (JSON writes it `\u0000`).
fn nul_output() -> BTreeMap<String, String> {
    BTreeMap::from([("key\0".to_owned(), "value\0with NUL".to_owned())])
}

async fn materialize_nul_output(fs: &FlowStone, strategy: Strategy) {
    let run = Run::partition(controlled()).executor(strategy);
    let out: BTreeMap<String, String> = fs
        .materialize("nul", run)
        .await
        .expect("materialize nul")
        .value()
        .expect("a map output");
    assert_eq!(out, nul_output());
    let stored: BTreeMap<String, String> = fs.load("nul", controlled()).await.expect("load nul");
    assert_eq!(stored, nul_output());
}

fn nul_asset() -> Asset {
    Asset::new("nul")
        .partitioned_by(controlled_partitions())
        .execute(|_ctx| async { Ok::<_, Error>(nul_output()) })
}

/// Outputs holding NUL are stored and loaded unchanged by the SQL store (PostgreSQL included).
async fn nul_in_outputs_round_trips_in_process(db: &TestDb) {
    let fs = connect(db, vec![nul_asset()]).await;
    materialize_nul_output(&fs, Strategy::Sync).await;
}

flowstone_queue::both_engines!(
    control_characters_in_partitions_are_stored_and_found,
    control_characters_in_partitions_go_through_the_queue,
    nul_in_outputs_round_trips_in_process,
);

/// Outputs holding NUL come back unchanged from a queue worker on SQLite, which stores NUL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_outputs_round_trips_through_the_queue_on_sqlite() {
    let db = TestDb::sqlite().await;
    let fs = connect(&db, vec![nul_asset()]).await;
    let worker = start_worker(&fs).await;
    materialize_nul_output(&fs, Strategy::Queue).await;
    worker.shutdown(Duration::from_secs(5)).await;
    db.cleanup().await;
}
