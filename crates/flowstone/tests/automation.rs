//! Automation end to end, on SQLite and PostgreSQL: schedules launch each tick once (however
//! many evaluators ask), catch up after downtime as their setting says, and fire once per local
//! day across daylight-saving changes; one process leads at a time and hands over when it
//! stops or dies; sensors keep their cursor across restarts and launch a run key once, and a
//! sensor that fails is a failed tick that stops nothing else; eager and on_missing conditions
//! launch what they should, once; definitions that cannot work are build errors.
//!
//! Some tests assert what the module docs promise and the library does not do yet (they fail;
//! each names the promise): two evaluators at once may fail a tick and run its backfill twice;
//! two ticks at one instant (a spring-forward gap) are taken for missed ones; a schedule more
//! than `MAX_MISSED` ticks behind records nothing and never moves on.
//!
//! Schedule tests call [`Automation::evaluate_once`] at chosen instants, so what they launch
//! is deterministic. Tests of leaders run real evaluation loops and wait by polling. What is
//! launched is a stored backfill; its partitions are read back from its stored request.
//!
//! A process dies here as a child process of this binary (`child_process`, ignored when run
//! directly), killed with SIGKILL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use flowstone::api::Builder;
use flowstone::automation::{
    Automation, AutomationHandle, CatchUp, Origin, SensorContext, TickQuery, TickRecord, TickStatus,
};
use flowstone::backfill::{BackfillRecord, StoredSource};
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, AutomationCondition, Daily, Error, ErrorKind, FlowStone, Partition, RetryPolicy, Run,
    RunRequest, Schedule, Sensor, SensorResult, Strategy, TickPartition,
};
use flowstone_queue::WorkerHandle;
use flowstone_queue::testing::TestDb;
use tokio::process::{Child, Command};

use common::outcome::{assert_error, assert_error_in};
use common::wait::{wait_for, wait_for_within};
use common::{Calls, numbered, records};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// An asset that counts its runs in `calls` and returns 1.
fn counted(name: &str, calls: &Calls) -> Asset {
    let calls = calls.clone();
    Asset::new(name).execute(move |ctx| {
        calls.bump(ctx.asset(), ctx.partition());
        async { Ok::<u8, Error>(1) }
    })
}

/// A day of 2026 as a partition.
fn day(m: u32, d: u32) -> Partition {
    Partition::Date(common::day(2026, m, d))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// The daily asset `daily` (from 2026-01-01) counting its runs, and nothing else.
fn daily_graph(calls: &Calls) -> Builder {
    FlowStone::builder().asset(counted("daily", calls).partitioned_by(Daily::from("2026-01-01")))
}

/// `builder` on the test's database, as one process would open it (its own pool).
async fn open(db: &TestDb, builder: Builder) -> FlowStone {
    builder
        .database(db.url())
        .connect()
        .await
        .expect("connect to the test database")
}

/// Automation of `fs` whose launches run in this process (no queue worker needed).
fn in_process(fs: &FlowStone) -> Automation {
    fs.automation().executor(Strategy::Async)
}

/// The ticks a round recorded for (`origin`, `name`).
fn ticks_in<'a>(
    ticks: &'a [TickRecord],
    origin: Origin,
    name: &'a str,
) -> impl Iterator<Item = &'a TickRecord> + 'a {
    ticks
        .iter()
        .filter(move |t| t.origin == origin && t.name == name)
}

/// The stored tick records of (`origin`, `name`), newest first.
async fn stored_ticks(fs: &FlowStone, origin: Origin, name: &str) -> Vec<TickRecord> {
    fs.ticks(&TickQuery::of(origin, name).limit(100_000))
        .await
        .expect("read tick records")
}

/// The stored backfills launched by `who` (`schedule:nightly`), oldest first.
async fn launched_by(fs: &FlowStone, who: &str) -> Vec<BackfillRecord> {
    let mut all: Vec<_> = fs
        .backfills(100_000)
        .await
        .expect("list backfills")
        .into_iter()
        .filter(|b| b.request.launched_by.as_deref() == Some(who))
        .collect();
    all.sort_by_key(|b| (b.created_at, b.id.to_string()));
    all
}

/// The partitions a launched backfill was asked for.
#[track_caller]
fn partitions_of(record: &BackfillRecord) -> Vec<Partition> {
    match &record.request.source {
        StoredSource::Partitions(list) => list.clone(),
        other => panic!("backfill {} was stored with {other:?}", record.id),
    }
}

/// Every partition launched by `who`, in launch order.
async fn launched_partitions(fs: &FlowStone, who: &str) -> Vec<Partition> {
    launched_by(fs, who)
        .await
        .iter()
        .flat_map(partitions_of)
        .collect()
}

/// Waits until every backfill automation launched has ended, and returns them.
async fn all_launches_finished(fs: &FlowStone) -> Vec<BackfillRecord> {
    wait_for_within(
        "every launched backfill to end",
        Duration::from_secs(120),
        || async {
            let all = fs.backfills(100_000).await.expect("list backfills");
            all.iter().all(|b| b.status.is_finished()).then_some(all)
        },
    )
    .await
}

/// Waits until `asset` has a successful record of `partition`.
async fn materialized_at(fs: &FlowStone, asset: &str, partition: &Partition) {
    wait_for(
        &format!("'{asset}' to be materialized at {partition}"),
        || async {
            records(fs, asset)
                .await
                .iter()
                .any(|m| &m.partition == partition && m.status == MaterializationStatus::Success)
                .then_some(())
        },
    )
    .await
}

/// The statuses of a list of ticks, for messages and comparisons.
fn statuses<'a>(ticks: impl IntoIterator<Item = &'a TickRecord>) -> Vec<TickStatus> {
    ticks.into_iter().map(|t| t.status).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A tick launches once

/// Two processes evaluate the same schedule at the same instant, one after the other, then
/// the first again: the tick launches one backfill of the partition it means, and every other
/// evaluation launches nothing. With the cursor put back before the tick (a leader that died
/// after launching, before moving it), the tick is recorded as skipped, naming the backfill
/// that holds it, and launches nothing new.
async fn a_schedule_tick_launches_once(db: &TestDb) {
    let calls = Calls::default();
    let graph =
        || daily_graph(&calls).schedule(Schedule::new("nightly", "0 1 * * *").target("daily"));
    let (one, two) = (open(db, graph()).await, open(db, graph()).await);
    let (a, b) = (in_process(&one), in_process(&two));

    let t0 = utc("2026-03-01T00:00:00Z");
    let first = a.evaluate_once(t0).await;
    assert_eq!(
        ticks_in(&first.ticks, Origin::Schedule, "nightly").count(),
        0,
        "the first evaluation only sets the cursor: {:?}",
        first.ticks
    );
    let cursor = one
        .automation_store()
        .cursor("schedule", "nightly")
        .await
        .unwrap()
        .expect("the first evaluation stores a cursor");
    assert_eq!(utc(&cursor), t0, "the cursor is the first evaluation's now");

    let t1 = utc("2026-03-01T02:00:00Z");
    let ra = a.evaluate_once(t1).await;
    let rb = b.evaluate_once(t1).await;
    let again = a.evaluate_once(t1).await;
    let ticks: Vec<&TickRecord> = [&ra, &rb, &again]
        .into_iter()
        .flat_map(|r| ticks_in(&r.ticks, Origin::Schedule, "nightly"))
        .collect();
    let launched: Vec<_> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Launched)
        .collect();
    assert_eq!(launched.len(), 1, "one launch of the 01:00 tick: {ticks:?}");
    assert_eq!(launched[0].at, utc("2026-03-01T01:00:00Z"));
    assert_eq!(launched[0].launched, 1);
    for t in &ticks {
        assert!(
            t.status == TickStatus::Launched
                || (t.status == TickStatus::Skipped && t.launched == 0),
            "any other evaluation of the tick launches nothing: {t:?}"
        );
    }
    let backfills = launched_by(&one, "schedule:nightly").await;
    assert_eq!(backfills.len(), 1, "{backfills:?}");
    assert_eq!(
        partitions_of(&backfills[0]),
        vec![day(2, 28)],
        "yesterday's window"
    );
    assert_eq!(launched[0].backfills, vec![backfills[0].id]);
    assert_eq!(backfills[0].request.selection, "daily");

    // The cursor back before the tick: the launch key holds.
    one.automation_store()
        .set_cursor("schedule", "nightly", &t0.to_rfc3339())
        .await
        .unwrap();
    let replay = b.evaluate_once(t1).await;
    let replayed: Vec<_> = ticks_in(&replay.ticks, Origin::Schedule, "nightly").collect();
    assert_eq!(
        statuses(replayed.iter().copied()),
        vec![TickStatus::Skipped],
        "{replayed:?}"
    );
    assert_eq!(replayed[0].launched, 0);
    assert_eq!(
        replayed[0].backfills,
        vec![backfills[0].id],
        "names the earlier launch"
    );
    assert!(
        replayed[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("launched before")),
        "{replayed:?}"
    );
    assert_eq!(launched_by(&two, "schedule:nightly").await.len(), 1);

    // Stored as one launched tick, seen the same from either process.
    let stored = stored_ticks(&two, Origin::Schedule, "nightly").await;
    assert_eq!(
        stored
            .iter()
            .filter(|t| t.status == TickStatus::Launched)
            .count(),
        1,
        "{stored:?}"
    );
    assert_eq!(
        stored,
        stored_ticks(&one, Origin::Schedule, "nightly").await
    );

    let finished = all_launches_finished(&one).await;
    assert!(
        finished.iter().all(|b| b.counts.succeeded == 1),
        "{finished:?}"
    );
    assert_eq!(
        calls.of("daily", &day(2, 28)),
        1,
        "the tick's partition ran once"
    );
}

/// Two processes evaluate the same schedule at the same instants at the same time (as two
/// leaders would in a split second of overlap), for five ticks: each tick launches one
/// backfill, and each backfill runs its partition once.
async fn two_evaluators_at_the_same_instant_run_each_tick_once(db: &TestDb) {
    let calls = Calls::default();
    let graph =
        || daily_graph(&calls).schedule(Schedule::new("nightly", "0 1 * * *").target("daily"));
    let (one, two) = (open(db, graph()).await, open(db, graph()).await);
    let (a, b) = (in_process(&one), in_process(&two));
    a.evaluate_once(utc("2026-03-01T00:00:00Z")).await;
    let mut ticks = Vec::new();
    for d in 2..=6 {
        let now = utc(&format!("2026-03-0{d}T02:00:00Z"));
        let (ra, rb) = tokio::join!(a.evaluate_once(now), b.evaluate_once(now));
        for r in [&ra, &rb] {
            ticks.extend(ticks_in(&r.ticks, Origin::Schedule, "nightly").cloned());
        }
    }
    let failed: Vec<_> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Failed)
        .collect();
    assert!(failed.is_empty(), "no evaluation fails: {failed:#?}");
    let launched = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Launched)
        .count();
    assert_eq!(launched, 5, "one launch per tick: {ticks:#?}");
    let backfills = launched_by(&one, "schedule:nightly").await;
    assert_eq!(backfills.len(), 5, "{backfills:?}");
    all_launches_finished(&one).await;
    for d in 1..=5 {
        let ran: Vec<_> = records(&one, "daily")
            .await
            .into_iter()
            .filter(|m| m.partition == day(3, d))
            .map(|m| (m.run_id, m.backfill_id, m.status))
            .collect();
        assert_eq!(
            ran.len(),
            1,
            "2026-03-0{d} was materialized once, by its tick's backfill: {ran:?}"
        );
    }
    assert!(
        calls.repeated().is_empty(),
        "ran twice: {:?}",
        calls.repeated()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Catch-up

/// `0 0 * * *` daily schedules evaluated at 2026-03-01 00:30 and then five days later: five
/// ticks are due (03-02 to 03-06).
fn catch_up_graph(calls: &Calls, catch_up: CatchUp) -> Builder {
    let name = match catch_up {
        CatchUp::Latest => "latest",
        CatchUp::All { .. } => "all_three",
    };
    daily_graph(calls).schedule(
        Schedule::new(name, "0 0 * * *")
            .target("daily")
            .catch_up(catch_up),
    )
}

async fn five_days_of_downtime(fs: &FlowStone) -> Vec<TickRecord> {
    let automation = in_process(fs);
    let t0 = utc("2026-03-01T00:30:00Z");
    assert!(automation.evaluate_once(t0).await.ticks.is_empty());
    automation
        .evaluate_once(t0 + TimeDelta::days(5))
        .await
        .ticks
}

/// After five days without a leader, catch-up `Latest` launches only the latest tick (03-06
/// 00:00, meaning 03-05) and records one skipped tick naming the 4 it passed over.
async fn catch_up_latest_launches_only_the_latest_missed_tick(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, catch_up_graph(&calls, CatchUp::Latest)).await;
    let ticks = five_days_of_downtime(&fs).await;
    let latest: Vec<_> = ticks_in(&ticks, Origin::Schedule, "latest").collect();
    assert_eq!(
        statuses(latest.iter().copied()),
        vec![TickStatus::Skipped, TickStatus::Launched],
        "{latest:?}"
    );
    let skipped = latest[0].detail.as_deref().unwrap_or_default();
    assert!(skipped.contains("4 missed tick(s)"), "{skipped}");
    assert_eq!(latest[1].at, utc("2026-03-06T00:00:00Z"));
    assert_eq!(
        launched_partitions(&fs, "schedule:latest").await,
        vec![day(3, 5)]
    );
    let stored = stored_ticks(&fs, Origin::Schedule, "latest").await;
    assert_eq!(
        statuses(stored.iter().rev()),
        vec![TickStatus::Skipped, TickStatus::Launched],
        "{stored:?}"
    );
    all_launches_finished(&fs).await;
    assert_eq!(calls.of("daily", &day(3, 5)), 1);
}

/// With `CatchUp::All { max: 3 }` the latest three of the five missed ticks launch, oldest
/// first (03-03, 03-04, 03-05), and one skipped tick names the other 2.
async fn catch_up_all_launches_at_most_max_missed_ticks(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, catch_up_graph(&calls, CatchUp::All { max: 3 })).await;
    let ticks = five_days_of_downtime(&fs).await;
    let all: Vec<_> = ticks_in(&ticks, Origin::Schedule, "all_three").collect();
    assert_eq!(
        statuses(all.iter().copied()),
        vec![
            TickStatus::Skipped,
            TickStatus::Launched,
            TickStatus::Launched,
            TickStatus::Launched
        ],
        "{all:?}"
    );
    let skipped = all[0].detail.as_deref().unwrap_or_default();
    assert!(skipped.contains("2 missed tick(s)"), "{skipped}");
    assert_eq!(
        all[1..].iter().map(|t| t.at).collect::<Vec<_>>(),
        vec![
            utc("2026-03-04T00:00:00Z"),
            utc("2026-03-05T00:00:00Z"),
            utc("2026-03-06T00:00:00Z")
        ]
    );
    assert_eq!(
        launched_partitions(&fs, "schedule:all_three").await,
        vec![day(3, 3), day(3, 4), day(3, 5)]
    );
    // Evaluating again at the same instant launches nothing more.
    let again = in_process(&fs)
        .evaluate_once(utc("2026-03-06T00:30:00Z"))
        .await;
    assert_eq!(
        ticks_in(&again.ticks, Origin::Schedule, "all_three").count(),
        0
    );
    assert_eq!(launched_by(&fs, "schedule:all_three").await.len(), 3);
    all_launches_finished(&fs).await;
    assert!(calls.repeated().is_empty(), "{:?}", calls.repeated());
}

/// A schedule switched off (from another process) launches nothing and keeps its cursor;
/// switched on again, the ticks it missed meanwhile are caught up as its setting says (the
/// latest launched, the others one skipped record).
async fn a_schedule_switched_off_launches_nothing_and_catches_up_when_on(db: &TestDb) {
    let calls = Calls::default();
    let graph = || catch_up_graph(&calls, CatchUp::Latest);
    let (fs, other) = (open(db, graph()).await, open(db, graph()).await);
    let automation = in_process(&fs);
    let t0 = utc("2026-03-01T00:30:00Z");
    automation.evaluate_once(t0).await;
    other.set_schedule_enabled("latest", false).await.unwrap();
    assert!(!fs.schedule_enabled("latest").await.unwrap());
    let off = automation.evaluate_once(t0 + TimeDelta::days(3)).await;
    assert!(off.ticks.is_empty(), "{:?}", off.ticks);
    assert!(launched_by(&fs, "schedule:latest").await.is_empty());
    let status = fs.automation_status().await.unwrap();
    assert!(
        status
            .definitions
            .iter()
            .any(|d| d.origin == Origin::Schedule && d.name == "latest" && !d.on),
        "{status:?}"
    );
    other.set_schedule_enabled("latest", true).await.unwrap();
    let on = automation.evaluate_once(t0 + TimeDelta::days(3)).await;
    let latest: Vec<_> = ticks_in(&on.ticks, Origin::Schedule, "latest").collect();
    assert_eq!(
        statuses(latest.iter().copied()),
        vec![TickStatus::Skipped, TickStatus::Launched],
        "{latest:?}"
    );
    assert!(
        latest[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("2 missed tick(s)")),
        "{latest:?}"
    );
    assert_eq!(
        launched_partitions(&fs, "schedule:latest").await,
        vec![day(3, 3)]
    );
    all_launches_finished(&fs).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Daylight saving

/// Evaluates `fs` every 20 minutes from `from` to `to` (the first evaluation sets the cursor)
/// and returns every tick recorded for schedule `name`.
async fn evaluate_every_20_minutes(
    fs: &FlowStone,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<TickRecord> {
    let automation = in_process(fs);
    let mut ticks = Vec::new();
    let mut now = from;
    while now <= to {
        let round = automation.evaluate_once(now).await;
        ticks.extend(ticks_in(&round.ticks, Origin::Schedule, name).cloned());
        now += TimeDelta::minutes(20);
    }
    ticks
}

fn berlin_graph(calls: &Calls) -> Builder {
    daily_graph(calls)
        .schedule(
            Schedule::new("berlin", "30 2 * * *")
                .timezone("Europe/Berlin")
                .target("daily"),
        )
        .schedule(
            Schedule::new("berlin_late", "30 2 * * *")
                .timezone("Europe/Berlin")
                .target("daily")
                .default_on(false),
        )
}

/// `30 2 * * *` in Europe/Berlin across 2026-03-29, when 02:00 CET jumps to 03:00 CEST: each
/// local day from 03-28 to 03-31 launches once, the missing 02:30 of 03-29 at 03:00 CEST (01:00
/// UTC), each meaning the local day before.
async fn a_berlin_schedule_fires_once_per_local_day_across_spring_forward(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, berlin_graph(&calls)).await;
    let ticks = evaluate_every_20_minutes(
        &fs,
        "berlin",
        utc("2026-03-27T12:00:00Z"),
        utc("2026-03-31T12:00:00Z"),
    )
    .await;
    assert!(
        ticks.iter().all(|t| t.status == TickStatus::Launched),
        "every tick launched, none skipped: {ticks:?}"
    );
    assert_eq!(
        ticks.iter().map(|t| t.at).collect::<Vec<_>>(),
        vec![
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            utc("2026-03-29T01:00:00Z"), // 02:30 does not exist: 03:00 CEST
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            utc("2026-03-31T00:30:00Z"),
        ],
        "{ticks:?}"
    );
    assert_eq!(
        launched_partitions(&fs, "schedule:berlin").await,
        vec![day(3, 27), day(3, 28), day(3, 29), day(3, 30)]
    );
    all_launches_finished(&fs).await;
    assert!(calls.repeated().is_empty(), "{:?}", calls.repeated());
}

/// `30 2 * * *` in Europe/Berlin across 2026-10-25, when 03:00 CEST falls back to 02:00 CET and
/// 02:30 happens twice: each local day launches once, 10-25 at the first 02:30 (00:30 UTC),
/// not again at the second (01:30 UTC). A schedule whose cursor lies between the two (its
/// evaluator started at 02:10 CET) does not fire 10-25 either: its 02:30 has passed.
async fn a_berlin_schedule_fires_once_per_local_day_across_fall_back(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, berlin_graph(&calls)).await;
    let ticks = evaluate_every_20_minutes(
        &fs,
        "berlin",
        utc("2026-10-23T12:00:00Z"),
        utc("2026-10-27T12:00:00Z"),
    )
    .await;
    assert!(
        ticks.iter().all(|t| t.status == TickStatus::Launched),
        "every tick launched, none skipped: {ticks:?}"
    );
    assert_eq!(
        ticks.iter().map(|t| t.at).collect::<Vec<_>>(),
        vec![
            utc("2026-10-24T00:30:00Z"), // 02:30 CEST
            utc("2026-10-25T00:30:00Z"), // the first 02:30 (CEST), not the second (CET)
            utc("2026-10-26T01:30:00Z"), // 02:30 CET
            utc("2026-10-27T01:30:00Z"),
        ],
        "{ticks:?}"
    );
    assert_eq!(
        launched_partitions(&fs, "schedule:berlin").await,
        vec![day(10, 23), day(10, 24), day(10, 25), day(10, 26)]
    );

    // A cursor at 02:10 CET, between the two 02:30s of 10-25.
    fs.set_schedule_enabled("berlin_late", true).await.unwrap();
    fs.automation_store()
        .set_cursor(
            "schedule",
            "berlin_late",
            &utc("2026-10-25T01:10:00Z").to_rfc3339(),
        )
        .await
        .unwrap();
    let automation = in_process(&fs);
    for now in ["2026-10-25T01:45:00Z", "2026-10-25T22:00:00Z"] {
        let round = automation.evaluate_once(utc(now)).await;
        let late: Vec<_> = ticks_in(&round.ticks, Origin::Schedule, "berlin_late").collect();
        assert!(
            late.is_empty(),
            "at {now}, the second 02:30 is no tick: {late:?}"
        );
    }
    let round = automation.evaluate_once(utc("2026-10-26T02:00:00Z")).await;
    let late: Vec<_> = ticks_in(&round.ticks, Origin::Schedule, "berlin_late").collect();
    assert_eq!(statuses(late.iter().copied()), vec![TickStatus::Launched]);
    assert_eq!(late[0].at, utc("2026-10-26T01:30:00Z"));
    assert_eq!(
        launched_partitions(&fs, "schedule:berlin_late").await,
        vec![day(10, 25)]
    );
    all_launches_finished(&fs).await;
}

/// The local time a launched schedule tick names (`tick 2026-10-25 02:00:00 → ...`).
#[track_caller]
fn local_of(tick: &TickRecord) -> String {
    let detail = tick.detail.as_deref().unwrap_or_default();
    detail
        .strip_prefix("tick ")
        .and_then(|rest| rest.split(" →").next())
        .unwrap_or_else(|| panic!("no local time in {detail:?}"))
        .to_owned()
}

/// An hourly schedule in Europe/Berlin on 2026-10-25 (25 hours long) fires 24 times: the
/// repeated 02:00 once, at its first instant (00:00 UTC), nothing at 01:00 UTC.
async fn an_hourly_berlin_schedule_fires_24_times_on_the_fall_back_day(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        daily_graph(&calls).schedule(
            Schedule::new("hourly_berlin", "0 * * * *")
                .timezone("Europe/Berlin")
                .target("daily"),
        ),
    )
    .await;
    let ticks = evaluate_every_20_minutes(
        &fs,
        "hourly_berlin",
        utc("2026-10-24T21:00:00Z"),
        utc("2026-10-25T22:30:00Z"),
    )
    .await;
    assert!(
        ticks.iter().all(|t| t.status == TickStatus::Launched),
        "{ticks:#?}"
    );
    let locals: Vec<String> = ticks.iter().map(local_of).collect();
    let expected: Vec<String> = (0..24)
        .map(|h| format!("2026-10-25 {h:02}:00:00"))
        .collect();
    assert_eq!(locals, expected);
    let at: Vec<_> = ticks.iter().map(|t| t.at).collect();
    assert_eq!(at[2], utc("2026-10-25T00:00:00Z"), "02:00 CEST");
    assert_eq!(at[3], utc("2026-10-25T02:00:00Z"), "03:00 CET");
    assert!(
        !at.contains(&utc("2026-10-25T01:00:00Z")),
        "02:00 CET is no tick"
    );
    assert_eq!(launched_by(&fs, "schedule:hourly_berlin").await.len(), 24);
    all_launches_finished(&fs).await;
}

/// An hourly schedule in Europe/Berlin on 2026-03-29 (23 hours long) fires for every local
/// hour, 24 times: 02:00 does not exist and fires at 03:00 CEST (01:00 UTC), with 03:00
/// itself; nothing is skipped (the schedule docs).
async fn an_hourly_berlin_schedule_fires_24_times_on_the_spring_forward_day(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        daily_graph(&calls).schedule(
            Schedule::new("hourly_berlin", "0 * * * *")
                .timezone("Europe/Berlin")
                .target("daily"),
        ),
    )
    .await;
    let ticks = evaluate_every_20_minutes(
        &fs,
        "hourly_berlin",
        utc("2026-03-28T22:30:00Z"),
        utc("2026-03-29T21:30:00Z"),
    )
    .await;
    all_launches_finished(&fs).await;
    let launched: Vec<String> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Launched)
        .map(local_of)
        .collect();
    let expected: Vec<String> = (0..24)
        .map(|h| format!("2026-03-29 {h:02}:00:00"))
        .collect();
    assert_eq!(launched, expected, "{ticks:#?}");
}

/// `*/30 2 * * *` in Europe/Berlin across 2026-03-29: both ticks of the missing hour (02:00
/// and 02:30) fire at 03:00 CEST, each once, as the schedule docs say ("Two ticks in one gap
/// both fire at that instant, each once"; "nothing is skipped"), with the default catch-up.
async fn two_ticks_in_the_spring_forward_gap_both_fire_once(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        daily_graph(&calls).schedule(
            Schedule::new("gap", "*/30 2 * * *")
                .timezone("Europe/Berlin")
                .target("daily"),
        ),
    )
    .await;
    let ticks = evaluate_every_20_minutes(
        &fs,
        "gap",
        utc("2026-03-27T12:00:00Z"),
        utc("2026-03-30T12:00:00Z"),
    )
    .await;
    all_launches_finished(&fs).await;
    let launched: Vec<_> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Launched)
        .map(|t| t.at)
        .collect();
    assert_eq!(
        launched,
        vec![
            utc("2026-03-28T01:00:00Z"), // 02:00 CET
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            utc("2026-03-29T01:00:00Z"), // 02:00, in the gap: 03:00 CEST
            utc("2026-03-29T01:00:00Z"), // 02:30, in the gap: 03:00 CEST
            utc("2026-03-30T00:00:00Z"), // 02:00 CEST
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
        ],
        "{ticks:#?}"
    );
    assert!(
        ticks.iter().all(|t| t.status == TickStatus::Launched),
        "nothing skipped: {ticks:#?}"
    );
}

/// A schedule more than 100,000 ticks behind (every second, two days without a leader)
/// "skips them all with one record, and starts again from now" (evaluate.rs, `MAX_MISSED`);
/// the next evaluation launches the ticks after that.
async fn a_schedule_far_behind_skips_everything_and_starts_again_from_now(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, every_second_graph(&calls)).await;
    fs.set_schedule_enabled("every_second", true).await.unwrap();
    let automation = in_process(&fs);
    let t0 = utc("2026-03-01T00:00:00Z");
    automation.evaluate_once(t0).await;
    let t1 = t0 + TimeDelta::days(2);
    let behind = automation.evaluate_once(t1).await;
    let ticks: Vec<_> = ticks_in(&behind.ticks, Origin::Schedule, "every_second").collect();
    assert_eq!(
        statuses(ticks.iter().copied()),
        vec![TickStatus::Skipped],
        "one record of the skipped ticks: {ticks:?}"
    );
    let cursor = fs
        .automation_store()
        .cursor("schedule", "every_second")
        .await
        .unwrap()
        .map(|c| utc(&c));
    assert!(
        cursor.is_some_and(|c| c >= t1 - TimeDelta::seconds(1)),
        "the cursor starts again from now ({t1}): {cursor:?}"
    );
    let next = automation.evaluate_once(t1 + TimeDelta::seconds(5)).await;
    let launched = ticks_in(&next.ticks, Origin::Schedule, "every_second")
        .filter(|t| t.status == TickStatus::Launched)
        .count();
    assert!(launched >= 1, "{:?}", next.ticks);
    all_launches_finished(&fs).await;
}

/// A leader that died after claiming a tick's launch key, before storing its backfill: the
/// next evaluation of the tick finds the key claimed, stores that backfill and starts it, and
/// launches no other.
async fn a_claimed_launch_whose_backfill_was_never_stored_is_started_by_the_next_evaluation(
    db: &TestDb,
) {
    let calls = Calls::default();
    let fs = open(
        db,
        daily_graph(&calls).schedule(Schedule::new("nightly", "0 1 * * *").target("daily")),
    )
    .await;
    let automation = in_process(&fs);
    let t0 = utc("2026-03-01T00:00:00Z");
    automation.evaluate_once(t0).await;
    // What the dead leader did: claim the 01:00 tick's key (its local time) for a backfill.
    let orphan = flowstone::BackfillId::new();
    let holders = fs
        .automation_store()
        .claim_launches(
            "schedule",
            "nightly",
            &["2026-03-01T01:00:00".to_owned()],
            orphan,
        )
        .await
        .unwrap();
    assert_eq!(holders, vec![orphan]);
    let round = automation.evaluate_once(utc("2026-03-01T02:00:00Z")).await;
    let ticks: Vec<_> = ticks_in(&round.ticks, Origin::Schedule, "nightly").collect();
    assert_eq!(ticks.len(), 1, "{ticks:?}");
    assert_eq!(ticks[0].backfills, vec![orphan], "{ticks:?}");
    let launched = launched_by(&fs, "schedule:nightly").await;
    assert_eq!(
        launched.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![orphan]
    );
    assert_eq!(partitions_of(&launched[0]), vec![day(2, 28)]);
    materialized_at(&fs, "daily", &day(2, 28)).await;
    all_launches_finished(&fs).await;
    let ran = records(&fs, "daily").await;
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].backfill_id, Some(orphan));
}

// ---------------------------------------------------------------------------------------------
// 4. One leader at a time

/// The partition a tick of `every_second` means: its second, as an integer (distinct over
/// the few minutes a test runs).
fn second_of(local: NaiveDateTime) -> flowstone::Result<Partition> {
    Ok(Partition::Int(
        local.and_utc().timestamp().rem_euclid(10_000),
    ))
}

/// `stamp` (integer partitions) and a schedule firing every second on it that catches up
/// every missed tick, so that a handover loses none.
fn every_second_graph(calls: &Calls) -> Builder {
    // In a child started with SLOW, `stamp` hangs: the child dies with its backfills running.
    let stamp = if std::env::var(SLOW).is_ok() {
        Asset::new("stamp").execute(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<u8, Error>(1)
        })
    } else {
        counted("stamp", calls)
    };
    FlowStone::builder()
        .asset(
            stamp
                .partitioned_by(numbered())
                // A job whose worker was killed is rescued and tried again, not discarded.
                .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(50))),
        )
        .schedule(
            Schedule::new("every_second", "* * * * * *")
                .target("stamp")
                .partition(TickPartition::Custom(Arc::new(second_of)))
                .catch_up(CatchUp::All { max: 10_000 }),
        )
}

/// Automation with short timings for leader tests.
fn quick(fs: &FlowStone, node: &str) -> Automation {
    // 3 s, renewed every second: a standby takes over soon after a leader dies, and a live
    // leader in a child process on a loaded machine still renews in time (at 1 s one missed
    // renewal under the full suite's load let the standby in).
    fs.automation()
        .node(node)
        .lease_ttl(Duration::from_secs(3))
        .poll(Duration::from_millis(100))
}

/// A process running automation: a queue worker with automation, or automation alone.
enum Runner {
    Worker(WorkerHandle),
    Alone(AutomationHandle),
}

impl Runner {
    async fn start(fs: &FlowStone, node: &str, as_worker: bool) -> Runner {
        if as_worker {
            // Launches go through the queue (the default with a database), served by the
            // workers themselves.
            let worker = common::queue::worker(fs, "assets", 4, node)
                .automation_with(quick(fs, node))
                .start()
                .await
                .expect("the worker starts");
            Runner::Worker(worker)
        } else {
            Runner::Alone(
                quick(fs, node)
                    .executor(Strategy::Async)
                    .start()
                    .expect("automation starts"),
            )
        }
    }

    async fn stop(self) {
        match self {
            Runner::Worker(worker) => {
                worker.shutdown(Duration::from_secs(10)).await;
            }
            Runner::Alone(handle) => handle.stop().await,
        }
    }
}

async fn leader(fs: &FlowStone) -> Option<String> {
    fs.automation_status()
        .await
        .expect("automation status")
        .leader
}

async fn wait_for_leader(fs: &FlowStone, among: &[&str]) -> String {
    wait_for(&format!("one of {among:?} to lead"), || async {
        leader(fs).await.filter(|l| among.contains(&l.as_str()))
    })
    .await
}

async fn wait_for_launches(fs: &FlowStone, at_least: usize) {
    wait_for(&format!("{at_least} launches of every_second"), || async {
        (launched_by(fs, "schedule:every_second").await.len() >= at_least).then_some(())
    })
    .await
}

/// The tick second a partition of `every_second` stands for (its timestamp modulo 10,000),
/// unwrapped over `all` (a test may straddle a multiple of 10,000 seconds).
fn tick_seconds(all: &[Partition]) -> Vec<i64> {
    let mut seconds: Vec<i64> = all
        .iter()
        .map(|p| match p {
            Partition::Int(i) => *i,
            other => panic!("every_second launched {other}"),
        })
        .collect();
    seconds.sort_unstable();
    if let (Some(first), Some(last)) = (seconds.first(), seconds.last())
        && last - first > 5_000
    {
        for s in &mut seconds {
            if *s < 5_000 {
                *s += 10_000;
            }
        }
        seconds.sort_unstable();
    }
    seconds
}

/// What a leader test checks at the end: no tick of `every_second` was launched twice (no
/// partition in two backfills, no tick recorded twice as launched, no backfill named by two
/// ticks); none was lost (the launched ticks are consecutive seconds); none failed; and every
/// launched partition was materialized. Returns how many launched.
async fn each_tick_launched_once_and_none_lost(fs: &FlowStone) -> usize {
    let backfills = all_launches_finished(fs).await;
    let launched: Vec<_> = backfills
        .iter()
        .filter(|b| b.request.launched_by.as_deref() == Some("schedule:every_second"))
        .collect();
    let partitions: Vec<Partition> = launched.iter().flat_map(|b| partitions_of(b)).collect();
    let distinct: BTreeSet<String> = partitions.iter().map(Partition::encode).collect();
    assert_eq!(
        distinct.len(),
        partitions.len(),
        "a tick was launched twice: {partitions:?}"
    );
    let seconds = tick_seconds(&partitions);
    for pair in seconds.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1,
            "the ticks between {} and {} were lost: {seconds:?}",
            pair[0],
            pair[1]
        );
    }
    let ticks = stored_ticks(fs, Origin::Schedule, "every_second").await;
    let failed: Vec<_> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Failed)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let launched_ticks: Vec<_> = ticks
        .iter()
        .filter(|t| t.status == TickStatus::Launched)
        .collect();
    let launched_at: BTreeSet<DateTime<Utc>> = launched_ticks.iter().map(|t| t.at).collect();
    assert_eq!(
        launched_at.len(),
        launched_ticks.len(),
        "a tick recorded twice as launched: {launched_ticks:#?}"
    );
    let mut instants_of: BTreeMap<String, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for t in &ticks {
        for id in &t.backfills {
            instants_of.entry(id.to_string()).or_default().insert(t.at);
        }
    }
    for (id, at) in &instants_of {
        assert_eq!(at.len(), 1, "backfill {id} is named by the ticks at {at:?}");
    }
    let done: BTreeSet<String> = records(fs, "stamp")
        .await
        .into_iter()
        .filter(|m| m.status == MaterializationStatus::Success)
        .map(|m| m.partition.encode())
        .collect();
    for b in &launched {
        // A resumed backfill skips what it materialized before its process died.
        assert_eq!(b.counts.succeeded + b.counts.skipped, 1, "{b:?}");
        for p in partitions_of(b) {
            assert!(
                done.contains(&p.encode()),
                "{p} was not materialized: {b:?}"
            );
        }
    }
    launched.len()
}

/// Two processes run automation on one database: one leads, the schedule firing every second
/// launches each tick once; when the leader stops, the other leads and the ticks go on, none
/// launched twice, none lost.
async fn one_leader_at_a_time_hands_over_on_stop(db: &TestDb, as_worker: bool) {
    let calls = Calls::default();
    let (one, two) = (
        open(db, every_second_graph(&calls)).await,
        open(db, every_second_graph(&calls)).await,
    );
    let (n1, n2) = (common::queue::node("auto-1"), common::queue::node("auto-2"));
    let r1 = Runner::start(&one, &n1, as_worker).await;
    let r2 = Runner::start(&two, &n2, as_worker).await;
    let first = wait_for_leader(&one, &[&n1, &n2]).await;
    wait_for_launches(&one, 3).await;
    assert_eq!(
        leader(&two).await.as_deref(),
        Some(first.as_str()),
        "both see the same leader, and it stays while it lives"
    );
    let (stopping, staying, next) = if first == n1 {
        (r1, r2, &n2)
    } else {
        (r2, r1, &n1)
    };
    stopping.stop().await;
    let handed = launched_by(&one, "schedule:every_second").await.len();
    assert_eq!(wait_for_leader(&one, &[next]).await, *next);
    wait_for_launches(&one, handed + 3).await;
    // No more ticks; what was launched ends while the other still serves the queue.
    one.set_schedule_enabled("every_second", false)
        .await
        .unwrap();
    let n = each_tick_launched_once_and_none_lost(&one).await;
    let status = one.automation_status().await.unwrap();
    assert_eq!(status.leader.as_deref(), Some(next.as_str()));
    assert!(status.lease_expires_at.is_some(), "{status:?}");
    staying.stop().await;
    assert_eq!(
        leader(&two).await,
        None,
        "a stopped leader gives its lease up"
    );
    assert!(n >= handed + 3, "{n} launches");
    assert!(
        calls.repeated().is_empty(),
        "ran twice: {:?}",
        calls.repeated()
    );
}

async fn two_workers_elect_one_automation_leader_and_hand_over_on_stop(db: &TestDb) {
    one_leader_at_a_time_hands_over_on_stop(db, true).await;
}

async fn two_automation_handles_elect_one_leader_and_hand_over_on_stop(db: &TestDb) {
    one_leader_at_a_time_hands_over_on_stop(db, false).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Sensors

/// A sensor asking every time for the same run (run key `file-1`: 2026-03-01 of `daily`),
/// recording the cursor it is given and answering `c<n>` on its n-th call.
fn same_file_sensor(seen: &Arc<Mutex<Vec<Option<String>>>>) -> Sensor {
    let seen = Arc::clone(seen);
    Sensor::new("files")
        .interval(Duration::from_millis(1))
        .evaluate(move |cx: SensorContext| {
            let seen = Arc::clone(&seen);
            async move {
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(cx.cursor.clone());
                    seen.len()
                };
                Ok(
                    SensorResult::run([RunRequest::new("daily", day(3, 1)).run_key("file-1")])
                        .cursor(format!("c{n}")),
                )
            }
        })
}

/// A sensor's cursor is kept in the database: a new FlowStone on it (a restarted process) is
/// given the cursor the sensor returned last. The sensor asks for the same run key on every
/// call: it launches once, the later calls are skipped ticks.
async fn a_sensor_cursor_survives_a_restart_and_a_run_key_launches_once(db: &TestDb) {
    let calls = Calls::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let graph = || daily_graph(&calls).sensor(same_file_sensor(&seen));
    let before = open(db, graph()).await;
    let automation = in_process(&before);
    let first = automation.evaluate_once(Utc::now()).await;
    let second = automation.evaluate_once(Utc::now()).await;
    let files: Vec<_> = [&first, &second]
        .into_iter()
        .flat_map(|r| ticks_in(&r.ticks, Origin::Sensor, "files"))
        .collect();
    assert_eq!(
        statuses(files.iter().copied()),
        vec![TickStatus::Launched, TickStatus::Skipped],
        "{files:?}"
    );
    assert_eq!(files[0].launched, 1);
    assert!(
        files[1]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("launched before")),
        "{files:?}"
    );
    all_launches_finished(&before).await;
    drop(automation);
    drop(before);

    let after = open(db, graph()).await;
    let third = in_process(&after).evaluate_once(Utc::now()).await;
    assert_eq!(
        statuses(ticks_in(&third.ticks, Origin::Sensor, "files")),
        vec![TickStatus::Skipped]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some("c1".to_owned()), Some("c2".to_owned())],
        "each call is given the cursor of the one before, across the restart"
    );
    assert_eq!(
        after
            .automation_store()
            .cursor("sensor", "files")
            .await
            .unwrap(),
        Some("c3".to_owned())
    );
    let launched = launched_by(&after, "sensor:files").await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(partitions_of(&launched[0]), vec![day(3, 1)]);
    let stored = stored_ticks(&after, Origin::Sensor, "files").await;
    assert_eq!(
        statuses(stored.iter().rev()),
        vec![
            TickStatus::Launched,
            TickStatus::Skipped,
            TickStatus::Skipped
        ]
    );
    assert_eq!(calls.of("daily", &day(3, 1)), 1);
}

/// A sensor switched off is not called; one answering without run keys launches every
/// request it makes.
async fn a_sensor_switched_off_is_not_called_and_requests_without_keys_always_launch(db: &TestDb) {
    let calls = Calls::default();
    let called = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&called);
    let fs = open(
        db,
        daily_graph(&calls).sensor(
            Sensor::new("keyless")
                .interval(Duration::from_millis(1))
                .evaluate(move |_cx| {
                    *counter.lock().unwrap() += 1;
                    async { Ok(SensorResult::run([RunRequest::new("daily", day(3, 1))])) }
                }),
        ),
    )
    .await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    automation.evaluate_once(Utc::now()).await;
    assert_eq!(*called.lock().unwrap(), 2);
    assert_eq!(launched_by(&fs, "sensor:keyless").await.len(), 2);
    fs.set_sensor_enabled("keyless", false).await.unwrap();
    assert!(!fs.sensor_enabled("keyless").await.unwrap());
    let off = automation.evaluate_once(Utc::now()).await;
    assert!(off.ticks.is_empty(), "{:?}", off.ticks);
    assert_eq!(*called.lock().unwrap(), 2, "not called while off");
    assert_eq!(launched_by(&fs, "sensor:keyless").await.len(), 2);
    all_launches_finished(&fs).await;
}

/// A sensor's body that panics.
fn blow_up() -> flowstone::Result<SensorResult> {
    panic!("the sensor blew up")
}

/// Sensors that panic, fail, or ask for an asset that does not exist are failed ticks naming
/// what went wrong; the good sensor and the schedule in the same round still launch.
async fn a_failing_sensor_is_a_failed_tick_and_the_round_goes_on(db: &TestDb) {
    let calls = Calls::default();
    let mut good_calls = 0;
    let fs = open(
        db,
        daily_graph(&calls)
            .sensor(
                Sensor::new("boom")
                    .interval(Duration::from_millis(1))
                    .evaluate(|_cx| async move { blow_up() }),
            )
            .sensor(
                Sensor::new("fails")
                    .interval(Duration::from_millis(1))
                    .evaluate(|_cx| async move {
                        Err::<SensorResult, _>(Error::failed("the bucket is unreachable"))
                    }),
            )
            .sensor(
                Sensor::new("typo")
                    .interval(Duration::from_millis(1))
                    .evaluate(|_cx| async move {
                        Ok(SensorResult::run([RunRequest::new("dialy", day(3, 1))]))
                    }),
            )
            .sensor(
                Sensor::new("good")
                    .interval(Duration::from_millis(1))
                    .evaluate(|cx: SensorContext| async move {
                        Ok(SensorResult::run([
                            RunRequest::new("daily", day(3, 2)).run_key(format!("good-{}", cx.now))
                        ]))
                    }),
            )
            .schedule(Schedule::new("nightly", "0 1 * * *").target("daily")),
    )
    .await;
    let automation = in_process(&fs);
    for now in ["2026-03-03T00:00:00Z", "2026-03-03T02:00:00Z"] {
        let round = automation.evaluate_once(utc(now)).await;
        let one = |name: &str| {
            let ticks: Vec<_> = ticks_in(&round.ticks, Origin::Sensor, name).collect();
            assert_eq!(
                ticks.len(),
                1,
                "at {now}, sensor '{name}': {:?}",
                round.ticks
            );
            ticks[0].clone()
        };
        for (name, mentions) in [
            (
                "boom",
                &["sensor 'boom'", "panicked", "the sensor blew up"][..],
            ),
            (
                "fails",
                &["sensor 'fails'", "the bucket is unreachable"][..],
            ),
            ("typo", &["'dialy'"][..]),
        ] {
            let tick = one(name);
            assert_eq!(tick.status, TickStatus::Failed, "{tick:?}");
            let detail = tick.detail.clone().unwrap_or_default();
            for m in mentions {
                assert!(
                    detail.contains(m),
                    "at {now}, '{name}' should mention {m:?}: {detail}"
                );
            }
        }
        let good = one("good");
        assert_eq!(
            (good.status, good.launched),
            (TickStatus::Launched, 1),
            "{good:?}"
        );
        good_calls += 1;
    }
    // The schedule launched its 01:00 tick in the second round.
    assert_eq!(
        launched_partitions(&fs, "schedule:nightly").await,
        vec![day(3, 2)]
    );
    assert_eq!(launched_by(&fs, "sensor:good").await.len(), good_calls);
    assert!(launched_by(&fs, "sensor:typo").await.is_empty());
    let stored = stored_ticks(&fs, Origin::Sensor, "boom").await;
    assert_eq!(
        statuses(&stored),
        vec![TickStatus::Failed, TickStatus::Failed]
    );
    all_launches_finished(&fs).await;
}

// ---------------------------------------------------------------------------------------------
// 6-7. Conditions

/// `up` (daily) and `down` (daily, reading the same day of `up`) with `condition`.
fn up_and_down(calls: &Calls, condition: AutomationCondition, days: Daily) -> Builder {
    FlowStone::builder()
        .asset(counted("up", calls).partitioned_by(days.clone()))
        .asset(
            counted("down", calls)
                .partitioned_by(days)
                .depends_on(["up"])
                .automation(condition),
        )
}

async fn materialize_up(fs: &FlowStone, partition: &Partition) {
    fs.materialize(
        "up",
        Run::partition(partition.clone()).executor(Strategy::Sync),
    )
    .await
    .unwrap_or_else(|err| panic!("materializing up at {partition}: {err}"));
}

/// An eager `down` (every window) reacts to `up` materialized by another process after the
/// first evaluation: it is launched at that partition and runs; evaluating again launches
/// nothing more.
async fn an_eager_asset_runs_once_after_its_upstream_is_materialized_elsewhere(db: &TestDb) {
    let calls = Calls::default();
    let graph = || {
        up_and_down(
            &calls,
            AutomationCondition::eager().all_windows(),
            Daily::from("2026-01-01"),
        )
    };
    let (auto_fs, other) = (open(db, graph()).await, open(db, graph()).await);
    let automation = in_process(&auto_fs);
    let first = automation.evaluate_once(Utc::now()).await;
    assert!(first.ticks.is_empty(), "{:?}", first.ticks);

    materialize_up(&other, &day(3, 10)).await;
    let round = automation.evaluate_once(Utc::now()).await;
    let down: Vec<_> = ticks_in(&round.ticks, Origin::Condition, "down").collect();
    assert_eq!(
        statuses(down.iter().copied()),
        vec![TickStatus::Launched],
        "{down:?}"
    );
    assert_eq!(down[0].launched, 1);
    materialized_at(&auto_fs, "down", &day(3, 10)).await;
    assert_eq!(
        launched_partitions(&auto_fs, "condition:down").await,
        vec![day(3, 10)]
    );
    all_launches_finished(&auto_fs).await;

    for _ in 0..2 {
        let again = automation.evaluate_once(Utc::now()).await;
        assert!(
            ticks_in(&again.ticks, Origin::Condition, "down")
                .next()
                .is_none(),
            "{:?}",
            again.ticks
        );
    }
    let again = in_process(&other).evaluate_once(Utc::now()).await;
    assert!(again.ticks.is_empty(), "{:?}", again.ticks);
    assert_eq!(launched_by(&auto_fs, "condition:down").await.len(), 1);
    assert_eq!(calls.of("down", &day(3, 10)), 1);
    assert_eq!(calls.of("up", &day(3, 10)), 1);
}

/// Eager reacts to materializations after its first evaluation, not to history (the
/// condition's docs): `up` materialized just before the first round is not reacted to; `up`
/// materialized after it is.
async fn an_eager_asset_does_not_react_to_history(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        up_and_down(
            &calls,
            AutomationCondition::eager().all_windows(),
            Daily::from("2026-01-01"),
        ),
    )
    .await;
    materialize_up(&fs, &day(3, 1)).await;
    let automation = in_process(&fs);
    let first = automation.evaluate_once(Utc::now()).await;
    assert!(first.ticks.is_empty(), "{:?}", first.ticks);
    materialize_up(&fs, &day(3, 2)).await;
    automation.evaluate_once(Utc::now()).await;
    let launched = launched_partitions(&fs, "condition:down").await;
    all_launches_finished(&fs).await;
    assert_eq!(
        launched,
        vec![day(3, 2)],
        "only the materialization after the first round is reacted to"
    );
}

/// By default an eager asset reacts only in its latest window (the day that closed last):
/// `up` materialized for yesterday and for a week ago launches `down` for yesterday alone.
async fn an_eager_asset_reacts_only_in_its_latest_window_by_default(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        up_and_down(
            &calls,
            AutomationCondition::eager(),
            Daily::from("2026-01-01"),
        ),
    )
    .await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    let today = Utc::now().date_naive();
    let yesterday = Partition::Date(today - TimeDelta::days(1));
    let week_ago = Partition::Date(today - TimeDelta::days(7));
    materialize_up(&fs, &week_ago).await;
    materialize_up(&fs, &yesterday).await;
    automation.evaluate_once(Utc::now()).await;
    assert_eq!(
        launched_partitions(&fs, "condition:down").await,
        vec![yesterday.clone()]
    );
    materialized_at(&fs, "down", &yesterday).await;
    all_launches_finished(&fs).await;
    assert_eq!(calls.of("down", &week_ago), 0);
}

/// Eager along a chain up <- mid <- down (mid and down eager, every window): `up` materialized
/// launches `mid`, whose materialization launches `down`, each once; `up` materialized again
/// (a new run) launches both again, once each.
async fn an_eager_chain_follows_each_new_upstream_run_once(db: &TestDb) {
    let calls = Calls::default();
    let eager = || AutomationCondition::eager().all_windows();
    let days = Daily::from("2026-01-01");
    let fs = open(
        db,
        FlowStone::builder()
            .asset(counted("up", &calls).partitioned_by(days.clone()))
            .asset(
                counted("mid", &calls)
                    .partitioned_by(days.clone())
                    .depends_on(["up"])
                    .automation(eager()),
            )
            .asset(
                counted("down", &calls)
                    .partitioned_by(days)
                    .depends_on(["mid"])
                    .automation(eager()),
            ),
    )
    .await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    let p = day(3, 10);
    for run in 1..=2 {
        materialize_up(&fs, &p).await;
        automation.evaluate_once(Utc::now()).await;
        wait_for(&format!("mid to run {run} time(s)"), || async {
            (calls.of("mid", &p) == run).then_some(())
        })
        .await;
        all_launches_finished(&fs).await;
        automation.evaluate_once(Utc::now()).await;
        wait_for(&format!("down to run {run} time(s)"), || async {
            (calls.of("down", &p) == run).then_some(())
        })
        .await;
        all_launches_finished(&fs).await;
        let quiet = automation.evaluate_once(Utc::now()).await;
        assert!(quiet.ticks.is_empty(), "run {run}: {:?}", quiet.ticks);
    }
    assert_eq!(launched_by(&fs, "condition:mid").await.len(), 2);
    assert_eq!(launched_by(&fs, "condition:down").await.len(), 2);
    assert_eq!((calls.of("mid", &p), calls.of("down", &p)), (2, 2));
}

/// Eager on a diamond: `down` reads `left` and `right`, both materialized at the same day
/// before one round. The round reacts to both events, and `down` runs at that day once (the
/// condition's docs: "never while it is running already").
async fn an_eager_asset_with_two_fresh_inputs_runs_once(db: &TestDb) {
    let calls = Calls::default();
    let days = Daily::from("2026-01-01");
    let fs = open(
        db,
        FlowStone::builder()
            .asset(counted("left", &calls).partitioned_by(days.clone()))
            .asset(counted("right", &calls).partitioned_by(days.clone()))
            .asset(
                counted("down", &calls)
                    .partitioned_by(days)
                    .depends_on(["left", "right"])
                    .automation(AutomationCondition::eager().all_windows()),
            ),
    )
    .await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    let p = day(3, 10);
    for asset in ["left", "right"] {
        fs.materialize(asset, Run::partition(p.clone()).executor(Strategy::Sync))
            .await
            .unwrap();
    }
    automation.evaluate_once(Utc::now()).await;
    materialized_at(&fs, "down", &p).await;
    let launched = all_launches_finished(&fs).await;
    automation.evaluate_once(Utc::now()).await;
    all_launches_finished(&fs).await;
    assert_eq!(
        calls.of("down", &p),
        1,
        "down ran once at {p}; launched: {:?}",
        launched
            .iter()
            .map(|b| (&b.request.source, b.counts))
            .collect::<Vec<_>>()
    );
    let records_at: Vec<_> = records(&fs, "down")
        .await
        .into_iter()
        .filter(|m| m.partition == p)
        .collect();
    assert_eq!(records_at.len(), 1, "{records_at:?}");
}

/// Eager never launches a partition while it runs, and runs it again after when its upstream
/// changed meanwhile: `down` (held at a gate) is running when `up` is materialized again; the
/// round then launches nothing; once `down` has ended, the next round launches it again for
/// the new `up`.
async fn an_eager_asset_running_when_its_upstream_changes_runs_again_after(db: &TestDb) {
    let calls = Calls::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    let down_calls = calls.clone();
    let days = Daily::from("2026-01-01");
    let fs = open(
        db,
        FlowStone::builder()
            .asset(counted("up", &calls).partitioned_by(days.clone()))
            .asset(
                Asset::new("down")
                    .partitioned_by(days)
                    .depends_on(["up"])
                    .automation(AutomationCondition::eager().all_windows())
                    .execute(move |ctx| {
                        down_calls.bump(ctx.asset(), ctx.partition());
                        let gate = Arc::clone(&held);
                        async move {
                            gate.acquire().await.expect("the gate").forget();
                            Ok::<u8, Error>(1)
                        }
                    }),
            ),
    )
    .await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    let p = day(3, 10);
    materialize_up(&fs, &p).await;
    automation.evaluate_once(Utc::now()).await;
    wait_for("down to start", || async {
        (calls.of("down", &p) == 1).then_some(())
    })
    .await;
    materialize_up(&fs, &p).await;
    let running = automation.evaluate_once(Utc::now()).await;
    assert!(
        ticks_in(&running.ticks, Origin::Condition, "down")
            .next()
            .is_none(),
        "nothing launched while down runs: {:?}",
        running.ticks
    );
    assert_eq!(launched_by(&fs, "condition:down").await.len(), 1);
    gate.add_permits(1);
    all_launches_finished(&fs).await;
    let after = automation.evaluate_once(Utc::now()).await;
    let down: Vec<_> = ticks_in(&after.ticks, Origin::Condition, "down").collect();
    assert_eq!(
        statuses(down.iter().copied()),
        vec![TickStatus::Launched],
        "down runs again for the up it has not read: {:?}",
        after.ticks
    );
    gate.add_permits(1);
    all_launches_finished(&fs).await;
    assert_eq!(calls.of("down", &p), 2);
    let quiet = automation.evaluate_once(Utc::now()).await;
    assert!(quiet.ticks.is_empty(), "{:?}", quiet.ticks);
}

/// Automation running in the background (not `evaluate_once`) launches an eager asset when
/// another process materializes its upstream, and only once.
async fn an_eager_asset_runs_when_automation_runs_in_the_background(db: &TestDb) {
    let calls = Calls::default();
    let graph = || {
        up_and_down(
            &calls,
            AutomationCondition::eager().all_windows(),
            Daily::from("2026-01-01"),
        )
    };
    let (fs, other) = (open(db, graph()).await, open(db, graph()).await);
    let runner = Runner::start(&fs, &common::queue::node("eager"), false).await;
    // Its first round sets the cursor: what is materialized after it is reacted to.
    wait_for("the eager cursor to be set", || async {
        fs.automation_store()
            .cursor("condition", "*materializations*")
            .await
            .unwrap()
            .map(drop)
    })
    .await;
    materialize_up(&other, &day(3, 10)).await;
    materialized_at(&other, "down", &day(3, 10)).await;
    // A few more rounds: nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    runner.stop().await;
    all_launches_finished(&fs).await;
    assert_eq!(
        launched_partitions(&fs, "condition:down").await,
        vec![day(3, 10)]
    );
    assert_eq!(calls.of("down", &day(3, 10)), 1);
    let ticks = stored_ticks(&fs, Origin::Condition, "down").await;
    assert_eq!(statuses(&ticks), vec![TickStatus::Launched], "{ticks:?}");
}

/// on_missing runs a partition at most once: one that failed is not launched again.
async fn on_missing_does_not_retry_a_failed_partition(db: &TestDb) {
    let calls = Calls::default();
    let failing = calls.clone();
    let fs = open(
        db,
        FlowStone::builder()
            .asset(counted("up", &calls).partitioned_by(Daily::from("2026-03-01").to("2026-03-02")))
            .asset(
                Asset::new("down")
                    .partitioned_by(Daily::from("2026-03-01").to("2026-03-02"))
                    .depends_on(["up"])
                    .automation(AutomationCondition::on_missing())
                    .execute(move |ctx| {
                        failing.bump(ctx.asset(), ctx.partition());
                        async { Err::<u8, Error>(Error::permanent("the report cannot be built")) }
                    }),
            ),
    )
    .await;
    materialize_up(&fs, &day(3, 1)).await;
    let automation = in_process(&fs);
    automation.evaluate_once(Utc::now()).await;
    let finished = all_launches_finished(&fs).await;
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0].counts.failed, 1, "{finished:?}");
    for _ in 0..2 {
        let again = automation.evaluate_once(Utc::now()).await;
        assert!(again.ticks.is_empty(), "{:?}", again.ticks);
    }
    assert_eq!(launched_by(&fs, "condition:down").await.len(), 1);
    assert_eq!(calls.of("down", &day(3, 1)), 1);
}

/// `down` on_missing over five days, `up` materialized for three of them: exactly those three
/// launch, in one backfill; once they ran, another round launches nothing. A fourth day of `up`
/// then launches that day alone.
async fn on_missing_launches_each_missing_partition_once(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        up_and_down(
            &calls,
            AutomationCondition::on_missing(),
            Daily::from("2026-03-01").to("2026-03-05"),
        ),
    )
    .await;
    for d in [1, 2, 4] {
        materialize_up(&fs, &day(3, d)).await;
    }
    let automation = in_process(&fs);
    let round = automation.evaluate_once(Utc::now()).await;
    let down: Vec<_> = ticks_in(&round.ticks, Origin::Condition, "down").collect();
    assert_eq!(
        statuses(down.iter().copied()),
        vec![TickStatus::Launched],
        "{down:?}"
    );
    assert_eq!(down[0].launched, 3);
    let launched = launched_by(&fs, "condition:down").await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(
        partitions_of(&launched[0]),
        vec![day(3, 1), day(3, 2), day(3, 4)]
    );
    all_launches_finished(&fs).await;
    for d in [1, 2, 4] {
        materialized_at(&fs, "down", &day(3, d)).await;
    }

    let again = automation.evaluate_once(Utc::now()).await;
    assert!(again.ticks.is_empty(), "{:?}", again.ticks);
    assert_eq!(launched_by(&fs, "condition:down").await.len(), 1);

    materialize_up(&fs, &day(3, 3)).await;
    automation.evaluate_once(Utc::now()).await;
    assert_eq!(
        launched_partitions(&fs, "condition:down").await,
        vec![day(3, 1), day(3, 2), day(3, 4), day(3, 3)]
    );
    all_launches_finished(&fs).await;
    assert!(calls.repeated().is_empty(), "{:?}", calls.repeated());
}

/// `down` on_cron daily: the first round (three days ago) sets the cursor; the latest tick
/// since (today 00:00 UTC, meaning yesterday: the window that closed) does not launch while
/// `up` was not materialized since the tick; once it is, it launches once.
async fn on_cron_launches_the_latest_tick_once_its_inputs_are_fresh(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        up_and_down(
            &calls,
            AutomationCondition::on_cron("0 0 * * *"),
            Daily::from("2026-01-01"),
        ),
    )
    .await;
    let now = Utc::now();
    let automation = in_process(&fs);
    let first = automation.evaluate_once(now - TimeDelta::days(3)).await;
    assert!(first.ticks.is_empty(), "{:?}", first.ticks);
    let yesterday = Partition::Date(now.date_naive() - TimeDelta::days(1));
    // Not materialized since the tick: nothing.
    let waiting = automation.evaluate_once(now).await;
    assert!(waiting.ticks.is_empty(), "{:?}", waiting.ticks);
    materialize_up(&fs, &yesterday).await;
    let round = automation.evaluate_once(Utc::now()).await;
    let down: Vec<_> = ticks_in(&round.ticks, Origin::Condition, "down").collect();
    assert_eq!(
        statuses(down.iter().copied()),
        vec![TickStatus::Launched],
        "{down:?}"
    );
    assert_eq!(
        launched_partitions(&fs, "condition:down").await,
        vec![yesterday.clone()]
    );
    materialized_at(&fs, "down", &yesterday).await;
    let again = automation.evaluate_once(Utc::now()).await;
    assert!(again.ticks.is_empty(), "{:?}", again.ticks);
    assert_eq!(launched_by(&fs, "condition:down").await.len(), 1);
    all_launches_finished(&fs).await;
}

/// A condition switched off launches nothing; switched on, it does (switches are shared by
/// every process on the database).
async fn a_condition_switched_off_launches_nothing(db: &TestDb) {
    let calls = Calls::default();
    let graph = || {
        up_and_down(
            &calls,
            AutomationCondition::on_missing(),
            Daily::from("2026-03-01").to("2026-03-02"),
        )
    };
    let (fs, other) = (open(db, graph()).await, open(db, graph()).await);
    materialize_up(&fs, &day(3, 1)).await;
    assert!(fs.condition_enabled("down").await.unwrap());
    other.set_condition_enabled("down", false).await.unwrap();
    assert!(!fs.condition_enabled("down").await.unwrap());
    let off = in_process(&fs).evaluate_once(Utc::now()).await;
    assert!(off.ticks.is_empty(), "{:?}", off.ticks);
    assert!(launched_by(&fs, "condition:down").await.is_empty());
    other.set_condition_enabled("down", true).await.unwrap();
    in_process(&fs).evaluate_once(Utc::now()).await;
    assert_eq!(
        launched_partitions(&fs, "condition:down").await,
        vec![day(3, 1)]
    );
    let status = fs.automation_status().await.unwrap();
    let down = status
        .definitions
        .iter()
        .find(|d| d.origin == Origin::Condition && d.name == "down")
        .expect("the condition is listed");
    assert!(down.on);
    assert_eq!(
        down.last_tick.as_ref().map(|t| t.status),
        Some(TickStatus::Launched)
    );
    all_launches_finished(&fs).await;
}

/// Tick records older than `keep_ticks` are pruned by a leader (at its first round), and the
/// store prunes by age on its own.
async fn old_tick_records_are_pruned(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, catch_up_graph(&calls, CatchUp::Latest)).await;
    let automation = in_process(&fs);
    let t0 = utc("2026-03-01T00:30:00Z");
    automation.evaluate_once(t0).await;
    automation.evaluate_once(t0 + TimeDelta::days(2)).await;
    automation.evaluate_once(t0 + TimeDelta::days(4)).await;
    let ticks = stored_ticks(&fs, Origin::Schedule, "latest").await;
    assert_eq!(ticks.len(), 4, "two skipped, two launched: {ticks:?}");
    // The store prunes what is older than the instant given.
    let pruned = fs
        .automation_store()
        .prune_ticks(t0 + TimeDelta::days(3))
        .await
        .unwrap();
    assert_eq!(pruned, 2, "the ticks of the first catch-up");
    all_launches_finished(&fs).await;
    // A leader keeping a day of ticks prunes the older ones (those of March; it records its
    // own catch-up of today's tick).
    let handle = fs
        .automation()
        .executor(Strategy::Async)
        .keep_ticks(Duration::from_secs(24 * 3600))
        .start()
        .unwrap();
    let kept = wait_for("the old ticks to be pruned", || async {
        let ticks = stored_ticks(&fs, Origin::Schedule, "latest").await;
        ticks
            .iter()
            .all(|t| t.at > Utc::now() - TimeDelta::days(1))
            .then_some(ticks)
    })
    .await;
    assert!(
        kept.iter().all(|t| t.at > t0 + TimeDelta::days(30)),
        "{kept:?}"
    );
    handle.stop().await;
    all_launches_finished(&fs).await;
}

/// Unpartitioned assets through each kind of automation: a schedule (no partition), a sensor
/// asking for `Partition::Unpartitioned`, on_missing and eager conditions; each launch runs.
async fn unpartitioned_assets_are_launched_by_every_kind_of_automation(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(
        db,
        FlowStone::builder()
            .asset(counted("source", &calls))
            .asset(counted("scheduled", &calls))
            .asset(counted("sensed", &calls))
            .asset(
                counted("filled", &calls)
                    .depends_on(["source"])
                    .automation(AutomationCondition::on_missing()),
            )
            .asset(
                counted("follows", &calls)
                    .depends_on(["source"])
                    .automation(AutomationCondition::eager()),
            )
            .schedule(Schedule::new("hourly", "0 * * * *").target("scheduled"))
            .sensor(Sensor::new("once").evaluate(|_cx| async {
                Ok(SensorResult::run([RunRequest::new(
                    "sensed",
                    Partition::Unpartitioned,
                )
                .run_key("only")]))
            })),
    )
    .await;
    let automation = in_process(&fs);
    let now = Utc::now();
    automation.evaluate_once(now).await;
    fs.materialize("source", Run::unpartitioned().executor(Strategy::Sync))
        .await
        .unwrap();
    let round = automation
        .evaluate_once(Utc::now() + TimeDelta::hours(1))
        .await;
    let failed: Vec<_> = round
        .ticks
        .iter()
        .filter(|t| t.status == TickStatus::Failed)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let finished = all_launches_finished(&fs).await;
    for who in [
        "schedule:hourly",
        "sensor:once",
        "condition:filled",
        "condition:follows",
    ] {
        let of: Vec<_> = finished
            .iter()
            .filter(|b| b.request.launched_by.as_deref() == Some(who))
            .collect();
        assert_eq!(of.len(), 1, "{who}: {finished:#?}");
        assert_eq!(
            partitions_of(of[0]),
            vec![Partition::Unpartitioned],
            "{who}"
        );
        assert_eq!(of[0].counts.succeeded, 1, "{who}: {:?}", of[0]);
    }
    for asset in ["scheduled", "sensed", "filled", "follows"] {
        assert_eq!(calls.of(asset, &Partition::Unpartitioned), 1, "{asset}");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Definitions that cannot work

fn noop(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async { Ok::<u8, Error>(1) })
}

fn sensor_ok(name: &str) -> Sensor {
    Sensor::new(name).evaluate(|_cx| async { Ok(SensorResult::skip("nothing new")) })
}

#[test]
fn automation_definitions_that_cannot_work_are_build_errors_naming_them() {
    let daily = || noop("daily").partitioned_by(Daily::from("2026-01-01"));
    let cases: Vec<(&str, Builder, &[&str])> = vec![
        (
            "sensor without function",
            FlowStone::builder()
                .asset(daily())
                .sensor(Sensor::new("mute")),
            &["sensor 'mute'", "no function"],
        ),
        (
            "zero interval",
            FlowStone::builder()
                .asset(daily())
                .sensor(sensor_ok("eager_beaver").interval(Duration::ZERO)),
            &["sensor 'eager_beaver'", "interval of zero"],
        ),
        (
            "duplicate sensors",
            FlowStone::builder()
                .asset(daily())
                .sensor(sensor_ok("twin"))
                .sensor(sensor_ok("twin")),
            &["sensor 'twin'", "declared twice"],
        ),
        (
            "bad on_cron",
            FlowStone::builder().asset(daily()).asset(
                noop("report")
                    .partitioned_by(Daily::from("2026-01-01"))
                    .depends_on(["daily"])
                    .automation(AutomationCondition::on_cron("61 * * * *")),
            ),
            &["asset 'report'", "on_cron", "61 * * * *"],
        ),
        (
            "on_cron in no time zone",
            FlowStone::builder().asset(daily()).asset(
                noop("report")
                    .partitioned_by(Daily::from("2026-01-01"))
                    .automation(AutomationCondition::on_cron("0 1 * * *").timezone("Mars/Olympus")),
            ),
            &["asset 'report'", "Mars/Olympus"],
        ),
    ];
    for (case, builder, mentions) in cases {
        match builder.build() {
            Ok(_) => panic!("{case}: the build succeeded"),
            Err(err) => assert_error_in(case, &err, ErrorKind::InvalidGraph, mentions),
        }
    }
}

#[tokio::test]
async fn unknown_automation_names_are_not_found() {
    let fs = FlowStone::builder()
        .asset(noop("daily").partitioned_by(Daily::from("2026-01-01")))
        .asset(noop("plain"))
        .asset(
            noop("eager_one")
                .depends_on(["plain"])
                .automation(AutomationCondition::eager()),
        )
        .schedule(Schedule::new("nightly", "0 1 * * *").target("daily"))
        .sensor(sensor_ok("files"))
        .build()
        .unwrap();
    let not_found = |what: &str, result: flowstone::Result<()>, mentions: &[&str]| {
        let err = result.expect_err(what);
        assert_error_in(what, &err, ErrorKind::NotFound, mentions);
    };
    not_found(
        "ticks of an unknown schedule",
        fs.ticks(&TickQuery::of(Origin::Schedule, "nighty"))
            .await
            .map(drop),
        &["schedule 'nighty'", "nightly"],
    );
    not_found(
        "ticks of an unknown sensor",
        fs.ticks(&TickQuery::of(Origin::Sensor, "file"))
            .await
            .map(drop),
        &["sensor 'file'", "files"],
    );
    not_found(
        "ticks of an asset without a condition",
        fs.ticks(&TickQuery::of(Origin::Condition, "plain"))
            .await
            .map(drop),
        &["'plain'", "no automation condition"],
    );
    not_found(
        "an unknown sensor's switch",
        fs.sensor_enabled("file").await.map(drop),
        &["sensor 'file'", "files"],
    );
    not_found(
        "setting an unknown sensor's switch",
        fs.set_sensor_enabled("nope", false).await,
        &["sensor 'nope'"],
    );
    not_found(
        "an unknown schedule's switch",
        fs.schedule_enabled("nighty").await.map(drop),
        &["schedule 'nighty'"],
    );
    not_found(
        "the condition of an asset without one",
        fs.condition_enabled("plain").await.map(drop),
        &["'plain'", "no automation condition"],
    );
    let unknown = fs.condition_enabled("nosuch").await.unwrap_err();
    assert_error(&unknown, ErrorKind::AssetNotFound, &["'nosuch'"]);
    // The known ones answer.
    assert!(fs.sensor_enabled("files").await.unwrap());
    assert!(fs.condition_enabled("eager_one").await.unwrap());
    assert!(
        fs.ticks(&TickQuery::of(Origin::Sensor, "files"))
            .await
            .unwrap()
            .is_empty()
    );
    let status = fs.automation_status().await.unwrap();
    assert_eq!(status.leader, None, "no database, no lease");
    let names: Vec<_> = status
        .definitions
        .iter()
        .map(|d| (d.origin, d.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            (Origin::Schedule, "nightly"),
            (Origin::Sensor, "files"),
            (Origin::Condition, "eager_one")
        ]
    );
}

#[tokio::test]
async fn automation_with_a_lease_too_short_does_not_start() {
    let fs = FlowStone::builder().asset(noop("plain")).build().unwrap();
    let Err(err) = fs.automation().lease_ttl(Duration::from_millis(10)).start() else {
        panic!("automation started with a 10 ms lease");
    };
    assert_error(&err, ErrorKind::InvalidOptions, &["lease TTL", "10ms"]);
}

// ---------------------------------------------------------------------------------------------
// 9. A leader killed

/// The child's role (`automation`).
const ROLE: &str = "FS_AUTOTEST_ROLE";
/// The database URL.
const URL: &str = "FS_AUTOTEST_URL";
/// The child's node name as the automation lease holder.
const NODE: &str = "FS_AUTOTEST_NODE";
/// Set in a child whose `stamp` hangs.
const SLOW: &str = "FS_AUTOTEST_SLOW";

/// The child processes' entry point; does nothing unless run as a child.
#[test]
#[ignore = "the child process of the SIGKILL test; does nothing when run directly"]
fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var(URL).expect("the child's database URL");
    let node = std::env::var(NODE).expect("the child's node name");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let fs = every_second_graph(&Calls::default())
                .database(url)
                .connect()
                .await
                .expect("the child connects");
            let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                let _ = closed_tx.send(());
            });
            let closed = async {
                let _ = closed_rx.await;
            };
            match role.as_str() {
                "automation" => quick(&fs, &node)
                    .executor(Strategy::Async)
                    .run_until(closed)
                    .await
                    .expect("automation runs"),
                "worker" => fs
                    .worker()
                    .queue("assets", 4)
                    .node(node.as_str())
                    .settings(common::queue::fast_settings())
                    .automation_with(quick(&fs, &node))
                    .run_until(closed)
                    .await
                    .map(drop)
                    .expect("the worker runs"),
                other => panic!("unknown child role {other}"),
            }
        });
}

fn spawn_automation(url: &str, node: &str, slow: bool) -> Child {
    spawn_child("automation", url, node, slow)
}

fn spawn_child(role: &str, url: &str, node: &str, slow: bool) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    if slow {
        command.env(SLOW, "1");
    }
    command
        .args(["child_process", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ROLE, role)
        .env(URL, url)
        .env(NODE, node)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the automation process")
}

/// The leader is another process, SIGKILLed while it launches a tick a second: this process,
/// standing by, takes over once the lease lapses, and the ticks go on. Each tick is launched
/// once and none is lost (catch-up keeps every missed tick), and every launched backfill ends,
/// those the dead leader left too.
async fn a_killed_leader_is_replaced_and_no_tick_is_lost_or_doubled(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, every_second_graph(&calls)).await;
    let (child_node, our_node) = (
        common::queue::node("doomed"),
        common::queue::node("standby"),
    );
    let mut child = spawn_automation(db.url(), &child_node, false);
    assert_eq!(wait_for_leader(&fs, &[&child_node]).await, child_node);
    let standby = Runner::start(&fs, &our_node, false).await;
    wait_for_launches(&fs, 3).await;
    assert_eq!(
        leader(&fs).await.as_deref(),
        Some(child_node.as_str()),
        "the standby does not take a live leader's lease"
    );
    child.start_kill().expect("SIGKILL the leader");
    child.wait().await.expect("the killed leader's exit status");
    let at_death = launched_by(&fs, "schedule:every_second").await.len();
    assert_eq!(wait_for_leader(&fs, &[&our_node]).await, our_node);
    wait_for_launches(&fs, at_death + 3).await;
    // No more ticks. The dead leader's unfinished backfills are resumed by the sweep (every
    // 10 s; a running one once its record has not moved for 30 s): keep leading until they
    // have ended.
    fs.set_schedule_enabled("every_second", false)
        .await
        .unwrap();
    let n = each_tick_launched_once_and_none_lost(&fs).await;
    standby.stop().await;
    assert!(n >= at_death + 3, "{n} launches");
}

/// As above, but the dead leader's backfills were running when it died (its `stamp` hangs):
/// the new leader's sweep finds them stale (no progress written for 30 s) and resumes them,
/// and they end; still each tick launched once, none lost.
async fn a_killed_leaders_running_backfills_are_resumed_by_the_next_leader(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, every_second_graph(&calls)).await;
    let (child_node, our_node) = (common::queue::node("hung"), common::queue::node("rescuer"));
    let mut child = spawn_automation(db.url(), &child_node, true);
    assert_eq!(wait_for_leader(&fs, &[&child_node]).await, child_node);
    let standby = Runner::start(&fs, &our_node, false).await;
    wait_for_launches(&fs, 2).await;
    child.start_kill().expect("SIGKILL the leader");
    child.wait().await.expect("the killed leader's exit status");
    let orphans: Vec<_> = launched_by(&fs, "schedule:every_second")
        .await
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(wait_for_leader(&fs, &[&our_node]).await, our_node);
    let at_death = orphans.len();
    wait_for_launches(&fs, at_death + 2).await;
    fs.set_schedule_enabled("every_second", false)
        .await
        .unwrap();
    let n = each_tick_launched_once_and_none_lost(&fs).await;
    standby.stop().await;
    assert!(n >= at_death + 2, "{n} launches");
    for id in orphans {
        let (record, _) = fs.backfill_status(id, None, 10).await.unwrap();
        assert_eq!(record.counts.succeeded, 1, "{record:?}");
    }
}

/// The leader is a queue worker in another process (launches go through the queue, the
/// default with a database), SIGKILLed with its jobs running: this process's worker takes the
/// lease, rescues the dead worker's jobs, resumes its backfills (following their queue rows),
/// and the ticks go on: each launched once, none lost, every launched partition materialized.
async fn a_killed_worker_leader_is_replaced_and_its_queued_launches_end(db: &TestDb) {
    let calls = Calls::default();
    let fs = open(db, every_second_graph(&calls)).await;
    let (child_node, our_node) = (
        common::queue::node("qdoomed"),
        common::queue::node("qstandby"),
    );
    let mut child = spawn_child("worker", db.url(), &child_node, true);
    assert_eq!(wait_for_leader(&fs, &[&child_node]).await, child_node);
    let standby = Runner::start(&fs, &our_node, true).await;
    wait_for_launches(&fs, 2).await;
    child.start_kill().expect("SIGKILL the leader");
    child.wait().await.expect("the killed leader's exit status");
    let at_death = launched_by(&fs, "schedule:every_second").await.len();
    assert_eq!(wait_for_leader(&fs, &[&our_node]).await, our_node);
    wait_for_launches(&fs, at_death + 2).await;
    fs.set_schedule_enabled("every_second", false)
        .await
        .unwrap();
    let n = each_tick_launched_once_and_none_lost(&fs).await;
    standby.stop().await;
    assert!(n >= at_death + 2, "{n} launches");
}

flowstone_queue::both_engines!(
    a_schedule_tick_launches_once,
    two_evaluators_at_the_same_instant_run_each_tick_once,
    catch_up_latest_launches_only_the_latest_missed_tick,
    catch_up_all_launches_at_most_max_missed_ticks,
    a_berlin_schedule_fires_once_per_local_day_across_spring_forward,
    a_berlin_schedule_fires_once_per_local_day_across_fall_back,
    two_workers_elect_one_automation_leader_and_hand_over_on_stop,
    two_automation_handles_elect_one_leader_and_hand_over_on_stop,
    a_sensor_cursor_survives_a_restart_and_a_run_key_launches_once,
    a_failing_sensor_is_a_failed_tick_and_the_round_goes_on,
    an_eager_asset_runs_once_after_its_upstream_is_materialized_elsewhere,
    an_eager_asset_does_not_react_to_history,
    on_missing_launches_each_missing_partition_once,
    on_cron_launches_the_latest_tick_once_its_inputs_are_fresh,
    a_condition_switched_off_launches_nothing,
    a_schedule_switched_off_launches_nothing_and_catches_up_when_on,
    an_eager_asset_reacts_only_in_its_latest_window_by_default,
    an_eager_asset_runs_when_automation_runs_in_the_background,
    on_missing_does_not_retry_a_failed_partition,
    a_sensor_switched_off_is_not_called_and_requests_without_keys_always_launch,
    old_tick_records_are_pruned,
    two_ticks_in_the_spring_forward_gap_both_fire_once,
    an_hourly_berlin_schedule_fires_24_times_on_the_fall_back_day,
    an_hourly_berlin_schedule_fires_24_times_on_the_spring_forward_day,
    a_schedule_far_behind_skips_everything_and_starts_again_from_now,
    a_claimed_launch_whose_backfill_was_never_stored_is_started_by_the_next_evaluation,
    an_eager_chain_follows_each_new_upstream_run_once,
    an_eager_asset_with_two_fresh_inputs_runs_once,
    an_eager_asset_running_when_its_upstream_changes_runs_again_after,
    unpartitioned_assets_are_launched_by_every_kind_of_automation,
    a_killed_leader_is_replaced_and_no_tick_is_lost_or_doubled,
    a_killed_leaders_running_backfills_are_resumed_by_the_next_leader,
    a_killed_worker_leader_is_replaced_and_its_queued_launches_end,
);

#[tokio::test]
async fn a_schedule_launches_on_the_executor_it_names() {
    let fs = FlowStone::builder()
        .asset(noop("daily").partitioned_by(Daily::from("2026-01-01")))
        .schedule(
            Schedule::new("nightly", "0 1 * * *")
                .target("daily")
                .executor(Strategy::Serial),
        )
        .build()
        .unwrap();
    let automation = fs.automation().executor(Strategy::Async);
    automation.evaluate_once(utc("2026-03-01T00:00:00Z")).await;
    let report = automation.evaluate_once(utc("2026-03-01T02:00:00Z")).await;
    assert_eq!(report.ticks.len(), 1, "{:?}", report.ticks);
    let id = report.ticks[0].backfills[0];
    let (record, _) = fs.backfill_status(id, None, 10).await.unwrap();
    assert_eq!(
        record.request.executor.as_deref(),
        Some("serial"),
        "the schedule's choice wins over the automation's"
    );
    assert_eq!(
        record.request.source,
        StoredSource::Partitions(vec![Partition::Date(
            chrono::NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
        )]),
        "the 01:00 tick of March 1st means February 28th"
    );
}
