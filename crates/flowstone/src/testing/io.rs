//! The IO suite: what every [`IoManager`] must do.

use crate::ids::RunId;
use crate::io::{IoManager, IoMetadata};
use crate::output::Output;
use crate::partition::Partition;

use super::{at, awkward_partitions, unique};

/// Checks an [`IoManager`]: typed round trips with metadata, overwrite, exists, delete, and that
/// awkward partitions map to distinct keys.
pub async fn io_suite(io: &dyn IoManager) {
    let asset = unique("io");
    let p = Partition::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"));
    assert!(io.load(&asset, &p).await.expect("load missing").is_none());
    assert!(!io.exists(&asset, &p).await.expect("exists missing"));
    assert!(
        io.metadata(&asset, &p)
            .await
            .expect("meta missing")
            .is_none()
    );
    assert!(!io.delete(&asset, &p).await.expect("delete missing"));

    let run = RunId::new();
    let meta = IoMetadata {
        run_id: run,
        stored_at: at(0),
        size_bytes: None,
    };
    let value = vec![(String::from("a"), 1u32), (String::from("ü:|"), 2)];
    io.store(&asset, &p, &Output::new(value.clone()), &meta)
        .await
        .expect("store");
    assert!(io.exists(&asset, &p).await.expect("exists"));
    let stored = io.load(&asset, &p).await.expect("load").expect("present");
    assert_eq!(stored.meta.run_id, run);
    assert_eq!(stored.meta.stored_at, meta.stored_at);
    assert_eq!(
        stored.output.value::<Vec<(String, u32)>>().expect("typed"),
        value
    );
    assert_eq!(
        io.metadata(&asset, &p)
            .await
            .expect("meta")
            .map(|m| m.run_id),
        Some(run)
    );

    let run2 = RunId::new();
    io.store(
        &asset,
        &p,
        &Output::new(String::from("replaced")),
        &IoMetadata {
            run_id: run2,
            ..meta.clone()
        },
    )
    .await
    .expect("overwrite");
    let stored = io.load(&asset, &p).await.expect("load").expect("present");
    assert_eq!(stored.meta.run_id, run2);
    assert_eq!(stored.output.value::<String>().expect("typed"), "replaced");

    let awkward = awkward_partitions();
    for (i, partition) in awkward.iter().enumerate() {
        io.store(&asset, partition, &Output::new(i as u64), &meta)
            .await
            .expect("store awkward");
    }
    for (i, partition) in awkward.iter().enumerate() {
        let back = io
            .load(&asset, partition)
            .await
            .expect("load awkward")
            .expect("present");
        assert_eq!(
            back.output.value::<u64>().expect("typed"),
            i as u64,
            "{partition}"
        );
    }

    // Loads at the same time (which a store may answer together): each gets its own key's
    // output, the same key asked twice gets it twice, a missing key or another asset's
    // partition gets nothing.
    let other = unique("io_other");
    io.store(&other, &awkward[0], &Output::new(u64::MAX), &meta)
        .await
        .expect("store other asset");
    let missing = Partition::Str(String::from("never stored"));
    let mut wanted: Vec<(&str, &Partition, Option<u64>)> = awkward
        .iter()
        .enumerate()
        .flat_map(|(i, partition)| [(asset.as_str(), partition, Some(i as u64)); 2])
        .collect();
    wanted.push((asset.as_str(), &missing, None));
    wanted.push((other.as_str(), &awkward[0], Some(u64::MAX)));
    wanted.push((other.as_str(), &awkward[1], None));
    let loaded = futures_util::future::join_all(
        wanted
            .iter()
            .map(|(asset, partition, _)| io.load(asset, partition)),
    )
    .await;
    for ((asset, partition, expected), got) in wanted.iter().zip(loaded) {
        let got = got
            .expect("concurrent load")
            .map(|stored| stored.output.value::<u64>().expect("typed"));
        assert_eq!(got, *expected, "{asset} {partition}");
    }

    assert!(io.delete(&asset, &p).await.expect("delete"));
    assert!(io.load(&asset, &p).await.expect("load deleted").is_none());
    assert!(!io.exists(&asset, &p).await.expect("exists deleted"));
}
