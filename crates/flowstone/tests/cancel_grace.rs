//! A cancelled asset sees its token fire first and gets its grace to clean up; one that ignores
//! its token is dropped after the grace. Either way the materialization ends `Cancelled` and its
//! output is not stored. In process and through the queue on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowstone::store::MaterializationStatus;
use flowstone::{Asset, Error, FlowStone, JobStatus, Run, Strategy};
use flowstone_queue::testing::TestDb;

use common::queue::{connect, start_worker};
use common::wait::{settled_record, wait_finished, wait_for};

/// Flags an asset sets: it started, it cleaned up, it ran past its sleep.
#[derive(Clone, Default)]
struct Flags {
    started: Arc<AtomicBool>,
    cleaned_up: Arc<AtomicBool>,
    finished_sleep: Arc<AtomicBool>,
}

impl Flags {
    fn get(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }
}

/// Waits for its token, then cleans up (an await of its own) and returns a value.
fn tidy(flags: &Flags) -> Asset {
    let flags = flags.clone();
    Asset::new("tidy")
        .cancel_grace(Duration::from_secs(10))
        .execute(move |ctx| {
            let flags = flags.clone();
            async move {
                flags.started.store(true, Ordering::SeqCst);
                ctx.cancellation().cancelled().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                flags.cleaned_up.store(true, Ordering::SeqCst);
                Ok::<_, Error>(1u8)
            }
        })
}

/// Ignores its token and sleeps far longer than its grace.
fn stubborn(flags: &Flags) -> Asset {
    let flags = flags.clone();
    Asset::new("stubborn")
        .cancel_grace(Duration::from_millis(200))
        .execute(move |_ctx| {
            let flags = flags.clone();
            async move {
                flags.started.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(600)).await;
                flags.finished_sleep.store(true, Ordering::SeqCst);
                Ok::<_, Error>(1u8)
            }
        })
}

async fn cancel_and_check(fs: &FlowStone, asset: &str, strategy: Strategy, flags: &Flags) {
    let job = fs
        .schedule(asset, Run::unpartitioned().executor(strategy))
        .await
        .unwrap();
    wait_for("the asset to start", || async {
        Flags::get(&flags.started).then_some(())
    })
    .await;
    fs.cancel_job(&job).await.unwrap();
    assert!(matches!(
        wait_finished(fs, &job).await,
        JobStatus::Cancelled
    ));
    assert_eq!(
        settled_record(fs, asset).await.status,
        MaterializationStatus::Cancelled
    );
    assert!(
        fs.load::<u8>(asset, flowstone::Partition::Unpartitioned)
            .await
            .is_err(),
        "a cancelled materialization stores no output"
    );
}

#[tokio::test]
async fn an_asset_cleans_up_within_its_grace_in_process() {
    let flags = Flags::default();
    let fs = FlowStone::builder().asset(tidy(&flags)).build().unwrap();
    cancel_and_check(&fs, "tidy", Strategy::Async, &flags).await;
    assert!(Flags::get(&flags.cleaned_up), "the asset ran its cleanup");
}

#[tokio::test]
async fn an_asset_ignoring_its_token_is_dropped_after_its_grace_in_process() {
    let flags = Flags::default();
    let fs = FlowStone::builder()
        .asset(stubborn(&flags))
        .build()
        .unwrap();
    cancel_and_check(&fs, "stubborn", Strategy::Async, &flags).await;
    assert!(!Flags::get(&flags.finished_sleep));
}

async fn assets_clean_up_or_are_dropped_on_the_queue(db: &TestDb) {
    let (tidy_flags, stubborn_flags) = (Flags::default(), Flags::default());
    let fs = connect(db, vec![tidy(&tidy_flags), stubborn(&stubborn_flags)]).await;
    let worker = start_worker(&fs, "grace").await;
    cancel_and_check(&fs, "tidy", Strategy::Queue, &tidy_flags).await;
    assert!(
        Flags::get(&tidy_flags.cleaned_up),
        "the asset ran its cleanup"
    );
    cancel_and_check(&fs, "stubborn", Strategy::Queue, &stubborn_flags).await;
    assert!(!Flags::get(&stubborn_flags.finished_sleep));
    worker.shutdown(Duration::from_secs(5)).await;
}

flowstone_queue::both_engines!(assets_clean_up_or_are_dropped_on_the_queue);
