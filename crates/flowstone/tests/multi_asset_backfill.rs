//! Multi-asset backfills through the public API, in memory: the selection syntax, the plan
//! (partitions translated from the anchor through the mappings, what waits for what), and
//! running it in-process (each (asset, partition) once, released as soon as what it needs in
//! the backfill succeeded, failures and cancellation blocking exactly their downstream,
//! skipping, force, progress, concurrency, a cumulative asset's days in order).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Datelike, NaiveDate};
use flowstone::{
    Asset, AssetSelection, Backfill, BackfillReport, CancellationToken, Daily, Error, ErrorKind,
    FlowStone, Monthly, Partition, PartitionMapping, PartitionOutcome, Progress, Strategy,
    TaskAsyncExecutor, Yearly, date_range,
};
use tokio::sync::{Notify, Semaphore};

use common::outcome::assert_error;
use common::wait::wait_until;
use common::{Counter, day};

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A day, a month (its first day) or a year (January 1st).
fn d(y: i32, m: u32, dd: u32) -> Partition {
    Partition::Date(day(y, m, dd))
}

/// Every day from `from` to `to`, inclusive.
fn days(from: (i32, u32, u32), to: (i32, u32, u32)) -> Vec<Partition> {
    date_range(day(from.0, from.1, from.2), day(to.0, to.1, to.2))
}

/// The months `from..=to` of `year`.
fn months(year: i32, from: u32, to: u32) -> Vec<Partition> {
    (from..=to).map(|m| d(year, m, 1)).collect()
}

/// The date of a day, month or year partition.
fn date(p: &Partition) -> NaiveDate {
    match p {
        Partition::Date(date) => *date,
        other => panic!("not a date partition: {other}"),
    }
}

fn same_month(a: &Partition, b: &Partition) -> bool {
    let (a, b) = (date(a), date(b));
    (a.year(), a.month()) == (b.year(), b.month())
}

fn same_year(a: &Partition, b: &Partition) -> bool {
    date(a).year() == date(b).year()
}

fn to_vec<'a>(it: impl Iterator<Item = &'a Partition>) -> Vec<Partition> {
    it.cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// The chain daily -> monthly -> annual
// ---------------------------------------------------------------------------------------------

/// What an asset of the chain did, in the order it happened (one lock, so the order is the
/// order of the calls).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start(&'static str, Partition),
    End(&'static str, Partition),
}

/// Shared between a test and the chain's assets: what ran, which days fail, which days wait
/// for a gate.
#[derive(Clone, Default)]
struct Script {
    events: Arc<Mutex<Vec<Event>>>,
    failing: Arc<Mutex<BTreeSet<Partition>>>,
    gates: Arc<Mutex<HashMap<Partition, Arc<Notify>>>>,
}

impl Script {
    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Makes `day` fail on every run.
    fn fail(&self, day: Partition) {
        self.failing.lock().unwrap().insert(day);
    }

    /// Makes `day` wait until the returned gate is opened (`notify_one`) or it is cancelled.
    fn gate(&self, day: Partition) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        self.gates.lock().unwrap().insert(day, Arc::clone(&gate));
        gate
    }

    /// The partitions of `asset` that started, in order.
    fn starts(&self, asset: &str) -> Vec<Partition> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Start(a, p) if a == asset => Some(p),
                _ => None,
            })
            .collect()
    }

    fn started(&self, asset: &str, p: &Partition) -> bool {
        self.events()
            .contains(&Event::Start(static_name(asset), p.clone()))
    }

    fn ended(&self, asset: &str, p: &Partition) -> bool {
        self.events()
            .contains(&Event::End(static_name(asset), p.clone()))
    }

    /// How many partitions of `asset` started.
    fn calls(&self, asset: &str) -> usize {
        self.starts(asset).len()
    }
}

/// The chain's asset names are `'static`; events compare by value.
fn static_name(asset: &str) -> &'static str {
    match asset {
        "daily" => "daily",
        "monthly" => "monthly",
        "annual" => "annual",
        "cum" => "cum",
        other => panic!("no asset {other} in the chain"),
    }
}

/// `daily` returns 1, after its gate if it has one, unless it is set to fail.
fn daily_asset(script: &Script, from_year: i32, to_year: i32) -> Asset {
    let script = script.clone();
    Asset::new("daily")
        .partitioned_by(Daily::from(format!("{from_year}-01-01")).to(format!("{to_year}-12-31")))
        .execute(move |ctx| {
            let script = script.clone();
            async move {
                let p = ctx.partition().clone();
                script.push(Event::Start("daily", p.clone()));
                let gate = script.gates.lock().unwrap().get(&p).cloned();
                if let Some(gate) = gate {
                    tokio::select! {
                        () = gate.notified() => {}
                        () = ctx.cancellation().cancelled() => {
                            return Err(Error::cancelled("daily"));
                        }
                    }
                }
                if script.failing.lock().unwrap().contains(&p) {
                    return Err(Error::failed(format!("the source returned 503 for {p}")));
                }
                script.push(Event::End("daily", p));
                Ok::<_, Error>(1i64)
            }
        })
}

/// An asset over `dep` through a time window, returning the sum of what it read.
fn rollup(
    script: &Script,
    name: &'static str,
    dep: &'static str,
    def: impl flowstone::PartitionsDefinition,
) -> Asset {
    let script = script.clone();
    Asset::new(name)
        .partitioned_by(def)
        .depends_on_mapped(dep, PartitionMapping::time_window())
        .execute(move |ctx| {
            let script = script.clone();
            async move {
                let p = ctx.partition().clone();
                script.push(Event::Start(name, p.clone()));
                let read = ctx.deps::<i64>(dep)?;
                script.push(Event::End(name, p));
                Ok::<_, Error>(read.iter().map(|(_, v)| v).sum::<i64>())
            }
        })
}

/// `daily` -> `monthly` -> `annual` over `from_year..=to_year` (names chosen so that their
/// alphabetical order is not their topological one), on a TaskAsync executor with 8 slots so
/// the backfill's `max_concurrency` is the limit that binds.
fn chain_over(script: &Script, from_year: i32, to_year: i32) -> FlowStone {
    FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(8))
        .asset(daily_asset(script, from_year, to_year))
        .asset(rollup(
            script,
            "monthly",
            "daily",
            Monthly::from(format!("{from_year}-01")).to(format!("{to_year}-12")),
        ))
        .asset(rollup(
            script,
            "annual",
            "monthly",
            Yearly::from(format!("{from_year}")).to(format!("{to_year}")),
        ))
        .build()
        .unwrap()
}

/// The chain over 2024 (a leap year).
fn chain(script: &Script) -> FlowStone {
    chain_over(script, 2024, 2024)
}

/// Every day of 2024.
fn year_2024() -> Backfill {
    Backfill::range(day(2024, 1, 1), day(2024, 12, 31))
}

// ---------------------------------------------------------------------------------------------
// Report checks
// ---------------------------------------------------------------------------------------------

/// The counts of `report` add up to its total, each equals the number of outcomes of its
/// kind, and every (asset, partition) appears once.
#[track_caller]
fn assert_counts_add_up(report: &BackfillReport) {
    let by_name = |name: &str| {
        report
            .outcomes
            .iter()
            .filter(|r| r.outcome.name() == name)
            .count()
    };
    assert_eq!(report.outcomes.len(), report.total);
    assert_eq!(
        report.succeeded
            + report.failed
            + report.skipped
            + report.cancelled
            + report.in_flight
            + report.upstream_failed,
        report.total,
        "{report:?}"
    );
    assert_eq!(report.succeeded, by_name("succeeded"));
    assert_eq!(report.failed, by_name("failed"));
    assert_eq!(report.skipped, by_name("skipped"));
    assert_eq!(report.cancelled, by_name("cancelled"));
    assert_eq!(report.in_flight, by_name("in_flight"));
    assert_eq!(report.upstream_failed, by_name("upstream_failed"));
    let unique: BTreeSet<(&str, &Partition)> = report
        .outcomes
        .iter()
        .map(|r| (r.asset.as_str(), &r.partition))
        .collect();
    assert_eq!(unique.len(), report.total, "each (asset, partition) once");
}

/// The outcome of (`asset`, `partition`) in `report`.
#[track_caller]
fn outcome_of<'a>(
    report: &'a BackfillReport,
    asset: &str,
    partition: &Partition,
) -> &'a PartitionOutcome {
    &report
        .outcomes
        .iter()
        .find(|r| r.asset == asset && r.partition == *partition)
        .unwrap_or_else(|| panic!("{asset} {partition} is not in the report"))
        .outcome
}

/// Each (asset, partition)'s outcome name.
fn outcome_names(report: &BackfillReport) -> BTreeMap<(String, Partition), &'static str> {
    report
        .outcomes
        .iter()
        .map(|r| ((r.asset.clone(), r.partition.clone()), r.outcome.name()))
        .collect()
}

/// Checks, on the event log, that each month and year started only after every one of its
/// days (months) in the backfill had ended, and that each (asset, partition) started once.
#[track_caller]
fn assert_each_waited_for_its_upstream(script: &Script) {
    let events = script.events();
    let mut seen: BTreeSet<(&str, Partition)> = BTreeSet::new();
    for (at, event) in events.iter().enumerate() {
        let Event::Start(asset, p) = event else {
            continue;
        };
        assert!(
            seen.insert((*asset, p.clone())),
            "{asset} {p} started twice"
        );
        let (dep, belongs): (&str, fn(&Partition, &Partition) -> bool) = match *asset {
            "monthly" => ("daily", same_month),
            "annual" => ("monthly", same_year),
            _ => continue,
        };
        // Everything of `dep` under `p` that ran in this backfill ended before `p` started.
        for other in &events {
            if let Event::Start(a, up) = other
                && *a == dep
                && belongs(up, p)
            {
                let end = events
                    .iter()
                    .position(|e| *e == Event::End(static_name(dep), up.clone()));
                assert!(
                    end.is_some_and(|end| end < at),
                    "{asset} {p} started before {dep} {up} ended"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Selections
// ---------------------------------------------------------------------------------------------

/// `z_raw` -> `m_mid` -> `a_top` -> `c_join` <- `b_other`, and `z_raw` -> `k_side`;
/// `k_side` and `b_other` are tagged team=x. Alphabetical order is not topological order.
/// Every asset is unpartitioned and counts its calls in `calls`.
fn selection_graph(calls: &Counter) -> FlowStone {
    let asset = |name: &str, deps: &[&str]| {
        let calls = calls.clone();
        Asset::new(name)
            .depends_on(deps.iter().copied())
            .execute(move |_ctx| {
                let calls = calls.clone();
                async move {
                    calls.bump();
                    Ok::<_, Error>(1u8)
                }
            })
    };
    FlowStone::builder()
        .asset(asset("z_raw", &[]).tag("team", "ingest"))
        .asset(asset("m_mid", &["z_raw"]))
        .asset(asset("a_top", &["m_mid"]))
        .asset(asset("k_side", &["z_raw"]).tag("team", "x"))
        .asset(asset("b_other", &[]).tag("team", "x"))
        .asset(asset("c_join", &["a_top", "b_other"]))
        .build()
        .unwrap()
}

/// Asserts that every asset of `order` comes after the dependencies of it that `order` holds.
#[track_caller]
fn assert_topological(fs: &FlowStone, order: &[String]) {
    for (at, name) in order.iter().enumerate() {
        for dep in fs.registry().get(name).unwrap().upstream_assets() {
            if let Some(dep_at) = order.iter().position(|n| n == dep) {
                assert!(dep_at < at, "{dep} comes after {name} in {order:?}");
            }
        }
    }
}

#[test]
fn selection_syntax_resolves_as_documented_in_topological_order() {
    let calls = Counter::default();
    let fs = selection_graph(&calls);
    for (text, expected) in [
        ("a_top", &["a_top"][..]),
        (
            "z_raw+",
            &["z_raw", "m_mid", "a_top", "k_side", "c_join"][..],
        ),
        ("+a_top", &["z_raw", "m_mid", "a_top"][..]),
        ("+m_mid+", &["z_raw", "m_mid", "a_top", "c_join"][..]),
        ("tag:team=x", &["k_side", "b_other"][..]),
        ("a_top,tag:team=x", &["a_top", "k_side", "b_other"][..]),
        (" m_mid , b_other+ ", &["m_mid", "b_other", "c_join"][..]),
        ("c_join,z_raw", &["z_raw", "c_join"][..]),
        (
            "+c_join,z_raw+",
            &["z_raw", "m_mid", "a_top", "k_side", "b_other", "c_join"][..],
        ),
    ] {
        let resolved = AssetSelection::parse(text)
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .resolve(fs.registry())
            .unwrap_or_else(|err| panic!("{text}: {err}"));
        let set: BTreeSet<&str> = resolved.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(set, want, "{text}");
        assert_eq!(set.len(), resolved.len(), "{text}: each asset once");
        assert_topological(&fs, &resolved);
        let registry_order: Vec<String> = fs
            .registry()
            .topological_order()
            .iter()
            .filter(|n| set.contains(n.as_str()))
            .cloned()
            .collect();
        assert_eq!(resolved, registry_order, "{text}: the registry's order");
        // The plan of the same selection holds the same assets in the same order.
        let plan = fs.plan_backfill(&Backfill::assets(text)).unwrap();
        let planned: Vec<&str> = plan.assets().collect();
        assert_eq!(planned, resolved, "{text}");
        assert_eq!(plan.len(), resolved.len(), "{text}: one partition each");
    }
    // Written in reverse, the result is still dependencies first.
    let resolved = AssetSelection::parse("c_join,a_top,m_mid,z_raw")
        .unwrap()
        .resolve(fs.registry())
        .unwrap();
    assert_eq!(resolved, ["z_raw", "m_mid", "a_top", "c_join"]);
    assert_eq!(calls.get(), 0, "resolving and planning run nothing");
}

#[tokio::test]
async fn a_run_reports_its_selection_in_topological_order_and_runs_each_once() {
    let calls = Counter::default();
    let fs = selection_graph(&calls);
    let report = fs
        .run_backfill(Backfill::assets("c_join,+a_top,b_other"))
        .await
        .unwrap();
    assert_eq!(
        report.assets,
        ["b_other", "z_raw", "m_mid", "a_top", "c_join"]
    );
    assert_topological(&fs, &report.assets);
    assert_eq!(report.asset, "b_other", "the first selected asset");
    let order: Vec<&str> = report.outcomes.iter().map(|r| r.asset.as_str()).collect();
    assert_eq!(order, report.assets, "outcomes in the same order");
    assert_counts_add_up(&report);
    assert_eq!(report.succeeded, 5);
    assert_eq!(calls.get(), 5, "each selected asset once, nothing else");
}

#[tokio::test]
async fn an_unknown_name_is_asset_not_found_with_did_you_mean_before_anything_runs() {
    let calls = Counter::default();
    let fs = selection_graph(&calls);
    for text in ["z_rwa", "z_rwa+", "+a_tpo", "+m_mdi+", "a_top,k_sdie"] {
        let err = fs.run_backfill(Backfill::assets(text)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssetNotFound, "{text}: {err}");
        assert!(err.to_string().contains("did you mean"), "{text}: {err}");
        let err = fs.plan_backfill(&Backfill::assets(text)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssetNotFound, "{text}: {err}");
    }
    let err = fs
        .run_backfill(Backfill::assets("z_rwa+"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did you mean 'z_raw'"), "{err}");
    let err = AssetSelection::parse("a_top,k_sdie")
        .unwrap()
        .resolve(fs.registry())
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::AssetNotFound,
        &["'k_sdie'", "did you mean 'k_side'"],
    );
    assert_eq!(calls.get(), 0, "nothing ran");
}

#[tokio::test]
async fn malformed_terms_are_invalid_options_naming_the_term_before_anything_runs() {
    let calls = Counter::default();
    let fs = selection_graph(&calls);
    for (text, named) in [
        ("a_top,,z_raw", "empty term"),
        ("a_top,", "empty term"),
        ("tag:team", "'tag:team'"),
        ("tag:=x", "empty tag key"),
        ("+", "'+'"),
        ("++", "'++'"),
        ("a_top++", "'a_top++'"),
        ("z_raw,+a+top", "'+a+top'"),
    ] {
        let err = AssetSelection::parse(text).unwrap_err();
        assert_error(&err, ErrorKind::InvalidOptions, &[named]);
        let err = fs.run_backfill(Backfill::assets(text)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{text}: {err}");
        assert!(err.to_string().contains(named), "{text}: {err}");
        let err = fs
            .run_backfill(Backfill::partitions([Partition::Unpartitioned]).select(text))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{text}: {err}");
    }
    assert_eq!(calls.get(), 0, "nothing ran");
}

#[tokio::test]
async fn a_tag_that_selects_nothing_is_an_error_before_anything_runs() {
    let calls = Counter::default();
    let fs = selection_graph(&calls);
    for text in [
        "tag:team=nobody",
        "tag:nokey=x",
        "a_top,tag:team=nobody",
        "tag:team=X",
    ] {
        let err = fs.run_backfill(Backfill::assets(text)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{text}: {err}");
        assert!(
            err.to_string().contains("selects no asset"),
            "{text}: {err}"
        );
        assert!(err.to_string().contains("tag:"), "{text}: {err}");
    }
    assert_eq!(calls.get(), 0, "nothing ran");
}

// ---------------------------------------------------------------------------------------------
// 2. Planning
// ---------------------------------------------------------------------------------------------

#[test]
fn a_range_of_days_plans_the_months_and_years_those_days_affect() {
    let script = Script::default();
    let fs = chain_over(&script, 2023, 2025);
    let plan = fs
        .plan_backfill(&Backfill::range(day(2024, 12, 20), day(2025, 2, 10)).select("daily+"))
        .unwrap();
    assert_eq!(
        plan.assets().collect::<Vec<_>>(),
        ["daily", "monthly", "annual"]
    );
    assert_eq!(
        to_vec(plan.partitions_of("daily")),
        days((2024, 12, 20), (2025, 2, 10))
    );
    assert_eq!(
        to_vec(plan.partitions_of("monthly")),
        [d(2024, 12, 1), d(2025, 1, 1), d(2025, 2, 1)]
    );
    assert_eq!(
        to_vec(plan.partitions_of("annual")),
        [d(2024, 1, 1), d(2025, 1, 1)]
    );
    assert_eq!(plan.len(), 12 + 31 + 10 + 3 + 2);
    // The anchor's days wait for nothing; a year for its months in the backfill.
    assert_eq!(plan.waits_for("daily", &d(2024, 12, 20)), Some(0));
    assert_eq!(plan.waits_for("annual", &d(2024, 1, 1)), Some(1));
    assert_eq!(plan.waits_for("annual", &d(2025, 1, 1)), Some(2));
    // Not covered: a month no day of the range falls in.
    assert_eq!(plan.waits_for("monthly", &d(2024, 11, 1)), None);
    assert_eq!(plan.waits_for("daily", &d(2024, 12, 19)), None);
    assert!(script.events().is_empty(), "planning runs nothing");
}

#[test]
fn waits_for_of_a_month_is_its_number_of_days_in_the_backfill() {
    let script = Script::default();
    let fs = chain_over(&script, 2023, 2025);
    let plan = fs
        .plan_backfill(&Backfill::range(day(2024, 1, 15), day(2024, 3, 10)).select("daily,monthly"))
        .unwrap();
    assert_eq!(plan.waits_for("monthly", &d(2024, 1, 1)), Some(17));
    assert_eq!(
        plan.waits_for("monthly", &d(2024, 2, 1)),
        Some(29),
        "leap year"
    );
    assert_eq!(plan.waits_for("monthly", &d(2024, 3, 1)), Some(10));
    // A listed set of days: only those count.
    let plan = fs
        .plan_backfill(
            &Backfill::partitions([day(2023, 2, 3), day(2023, 2, 27), day(2023, 4, 1)])
                .select("daily+"),
        )
        .unwrap();
    assert_eq!(plan.waits_for("monthly", &d(2023, 2, 1)), Some(2));
    assert_eq!(plan.waits_for("monthly", &d(2023, 4, 1)), Some(1));
    assert_eq!(plan.waits_for("annual", &d(2023, 1, 1)), Some(2));
    assert_eq!(plan.len(), 3 + 2 + 1);
}

#[test]
fn plus_annual_over_one_year_covers_its_12_months_and_every_day() {
    let script = Script::default();
    let fs = chain_over(&script, 2023, 2025);
    for (year, days_in_year) in [(2023, 365), (2024, 366)] {
        let plan = fs
            .plan_backfill(&Backfill::range(day(year, 1, 1), day(year, 12, 31)).select("+annual"))
            .unwrap();
        assert_eq!(
            plan.assets().collect::<Vec<_>>(),
            ["daily", "monthly", "annual"]
        );
        assert_eq!(to_vec(plan.partitions_of("annual")), [d(year, 1, 1)]);
        assert_eq!(to_vec(plan.partitions_of("monthly")), months(year, 1, 12));
        assert_eq!(
            to_vec(plan.partitions_of("daily")),
            days((year, 1, 1), (year, 12, 31))
        );
        assert_eq!(plan.partitions_of("daily").count(), days_in_year);
        assert_eq!(plan.len(), days_in_year + 12 + 1);
        assert_eq!(plan.waits_for("annual", &d(year, 1, 1)), Some(12));
        let february = if days_in_year == 366 { 29 } else { 28 };
        assert_eq!(plan.waits_for("monthly", &d(year, 2, 1)), Some(february));
        assert_eq!(plan.waits_for("daily", &d(year, 6, 30)), Some(0));
    }
    // The same with an explicit anchor on a list of years.
    let plan = fs
        .plan_backfill(
            &Backfill::partitions([day(2025, 1, 1)])
                .select("+annual")
                .anchor("annual"),
        )
        .unwrap();
    assert_eq!(plan.len(), 365 + 12 + 1);
}

#[test]
fn an_asset_not_connected_to_the_anchor_takes_the_source_as_its_own_partitions() {
    let script = Script::default();
    let fs = FlowStone::builder()
        .asset(daily_asset(&script, 2024, 2024))
        .asset(rollup(
            &script,
            "monthly",
            "daily",
            Monthly::from("2024-01").to("2024-12"),
        ))
        .asset(
            Asset::new("weather")
                .partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
                .execute(|_ctx| async { Ok::<_, Error>(0u8) }),
        )
        .asset(
            Asset::new("billing")
                .partitioned_by(Monthly::from("2024-01").to("2024-12"))
                .execute(|_ctx| async { Ok::<_, Error>(0u8) }),
        )
        .build()
        .unwrap();
    let plan = fs
        .plan_backfill(
            &Backfill::range(day(2024, 1, 15), day(2024, 3, 10)).select("daily+,weather,billing"),
        )
        .unwrap();
    // Translated: the months the days affect, January included.
    assert_eq!(to_vec(plan.partitions_of("monthly")), months(2024, 1, 3));
    // Not connected: the range read as each one's own partitions (the months whose first
    // day is in the range, so not January).
    assert_eq!(
        to_vec(plan.partitions_of("weather")),
        days((2024, 1, 15), (2024, 3, 10))
    );
    assert_eq!(to_vec(plan.partitions_of("billing")), months(2024, 2, 3));
    assert_eq!(plan.waits_for("billing", &d(2024, 2, 1)), Some(0));
    assert_eq!(plan.waits_for("weather", &d(2024, 2, 1)), Some(0));
}

/// A bug: an asset downstream of an asset that got its partitions in the upstream pass (it
/// is upstream of the anchor) is treated as "connected to none" and takes the source as its
/// own partitions, instead of what that asset's partitions affect.
#[test]
fn an_asset_downstream_of_an_upstream_of_the_anchor_takes_what_it_affects() {
    let script = Script::default();
    let fs = FlowStone::builder()
        .asset(daily_asset(&script, 2024, 2024))
        .asset(
            Asset::new("mirror")
                .partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
                .depends_on(["daily"])
                .execute(|ctx| async move { ctx.dep::<i64>("daily") }),
        )
        .asset(rollup(
            &script,
            "monthly",
            "daily",
            Monthly::from("2024-01").to("2024-12"),
        ))
        .build()
        .unwrap();
    // Anchor mirror: daily takes what mirror reads (Jan 15 .. Mar 10); monthly is downstream
    // of daily, so it should take the months those days affect.
    let plan = fs
        .plan_backfill(
            &Backfill::range(day(2024, 1, 15), day(2024, 3, 10)).select("+mirror,monthly"),
        )
        .unwrap();
    assert_eq!(
        to_vec(plan.partitions_of("daily")),
        days((2024, 1, 15), (2024, 3, 10))
    );
    assert_eq!(to_vec(plan.partitions_of("monthly")), months(2024, 1, 3));
    assert_eq!(plan.waits_for("monthly", &d(2024, 1, 1)), Some(17));
}

#[test]
fn backfill_assets_covers_every_partition_of_each_asset() {
    let script = Script::default();
    let fs = chain_over(&script, 2023, 2024);
    let plan = fs.plan_backfill(&Backfill::assets("daily+")).unwrap();
    assert_eq!(plan.partitions_of("daily").count(), 365 + 366);
    assert_eq!(
        to_vec(plan.partitions_of("monthly")),
        [months(2023, 1, 12), months(2024, 1, 12)].concat()
    );
    assert_eq!(
        to_vec(plan.partitions_of("annual")),
        [d(2023, 1, 1), d(2024, 1, 1)]
    );
    assert_eq!(plan.len(), 731 + 24 + 2);
    assert_eq!(plan.waits_for("monthly", &d(2024, 2, 1)), Some(29));
    assert_eq!(plan.waits_for("annual", &d(2023, 1, 1)), Some(12));
    // Only the annual asset: its own partitions, waiting for nothing (its months are not in
    // the backfill).
    let plan = fs.plan_backfill(&Backfill::assets("annual")).unwrap();
    assert_eq!(
        to_vec(plan.partitions_of("annual")),
        [d(2023, 1, 1), d(2024, 1, 1)]
    );
    assert_eq!(plan.waits_for("annual", &d(2024, 1, 1)), Some(0));
}

#[test]
fn an_anchor_not_in_the_selection_is_a_clear_error() {
    let script = Script::default();
    let fs = chain(&script);
    let err = fs
        .plan_backfill(
            &Backfill::range(day(2024, 1, 1), day(2024, 1, 31))
                .select("daily,monthly")
                .anchor("annual"),
        )
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidOptions,
        &[
            "anchor 'annual'",
            "not among its selected assets",
            "daily, monthly",
        ],
    );
    let err = fs
        .plan_backfill(&year_2024().select("daily+").anchor("anual"))
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::AssetNotFound,
        &["'anual'", "did you mean 'annual'"],
    );
    // No selection at all.
    let err = fs.plan_backfill(&year_2024()).unwrap_err();
    assert_error(&err, ErrorKind::InvalidOptions, &["selects no asset"]);
}

#[tokio::test]
async fn a_list_outside_the_anchors_definition_is_a_clear_error_before_anything_runs() {
    let script = Script::default();
    let fs = chain(&script);
    let err = fs
        .plan_backfill(&Backfill::partitions([day(2023, 12, 31)]).select("daily+"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidPartition, "{err}");
    assert!(err.to_string().contains("2023-12-31"), "{err}");
    let err = fs
        .run_backfill(Backfill::partitions([day(2023, 12, 31)]).select("daily+"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2023-12-31"), "{err}");
    // A month that is not a month start, given to a monthly anchor.
    let err = fs
        .plan_backfill(&Backfill::partitions([day(2024, 3, 15)]).select("+monthly"))
        .unwrap_err();
    assert!(err.to_string().contains("2024-03-15"), "{err}");
    assert!(script.events().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_range_outside_the_anchors_definition_is_a_clear_error() {
    let script = Script::default();
    let fs = chain(&script);
    let outside = || Backfill::range(day(2023, 1, 1), day(2023, 1, 31)).select("daily+");
    let err = fs.plan_backfill(&outside()).unwrap_err();
    assert!(err.to_string().contains("daily"), "{err}");
    let err = fs.run_backfill(outside()).await.unwrap_err();
    assert!(err.to_string().contains("daily"), "{err}");
    let err = fs
        .backfill("daily", Backfill::range(day(2023, 1, 1), day(2023, 1, 31)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("daily"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3. Running in-process
// ---------------------------------------------------------------------------------------------

async fn every_partition_runs_exactly_once_on(strategy: Strategy) {
    let script = Script::default();
    let fs = chain(&script);
    let report = fs
        .run_backfill(
            year_2024()
                .select("daily+")
                .executor(strategy.clone())
                .max_concurrency(4),
        )
        .await
        .unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.total, 366 + 12 + 1, "{strategy:?}");
    assert_eq!(
        report.succeeded,
        report.total,
        "{strategy:?}: {:?}",
        report.failures().next()
    );
    let mut days_run = script.starts("daily");
    days_run.sort();
    assert_eq!(days_run, days((2024, 1, 1), (2024, 12, 31)), "{strategy:?}");
    let months_run: BTreeSet<Partition> = script.starts("monthly").into_iter().collect();
    assert_eq!(months_run, months(2024, 1, 12).into_iter().collect());
    assert_eq!(script.calls("monthly"), 12, "{strategy:?}");
    assert_eq!(script.starts("annual"), [d(2024, 1, 1)]);
    assert_each_waited_for_its_upstream(&script);
    let year: i64 = fs.load("annual", d(2024, 1, 1)).await.unwrap();
    assert_eq!(year, 366, "the year summed every day once");
    let february: i64 = fs.load("monthly", d(2024, 2, 1)).await.unwrap();
    assert_eq!(february, 29);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_asset_partition_runs_exactly_once_on_async() {
    every_partition_runs_exactly_once_on(Strategy::Async).await;
}

#[tokio::test]
async fn every_asset_partition_runs_exactly_once_on_sync() {
    every_partition_runs_exactly_once_on(Strategy::Sync).await;
}

#[tokio::test]
async fn every_asset_partition_runs_exactly_once_on_serial() {
    every_partition_runs_exactly_once_on(Strategy::Serial).await;
}

/// January's month completes while a day of February is still held at its gate: months are
/// released as their own days finish, not after every day.
async fn a_month_starts_as_soon_as_its_own_days_are_done_on(strategy: Strategy) {
    let script = Script::default();
    let fs = chain(&script);
    let held = d(2024, 2, 10);
    let gate = script.gate(held.clone());
    let running = tokio::spawn({
        let fs = fs.clone();
        let strategy = strategy.clone();
        async move {
            fs.run_backfill(
                Backfill::range(day(2024, 1, 1), day(2024, 2, 29))
                    .select("daily,monthly")
                    .executor(strategy)
                    .max_concurrency(4),
            )
            .await
        }
    });
    wait_until("January's month to complete", || {
        script.ended("monthly", &d(2024, 1, 1))
    })
    .await;
    assert!(script.started("daily", &held), "{strategy:?}");
    assert!(
        !script.ended("daily", &held),
        "{strategy:?}: the February day is still at its gate"
    );
    assert!(
        !script.started("monthly", &d(2024, 2, 1)),
        "{strategy:?}: February waits for its held day"
    );
    gate.notify_one();
    let report = running.await.unwrap().unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.succeeded, 60 + 2, "{strategy:?}");
    assert_each_waited_for_its_upstream(&script);
    let events = script.events();
    let held_end = events
        .iter()
        .position(|e| *e == Event::End("daily", held.clone()))
        .unwrap();
    let february = events
        .iter()
        .position(|e| *e == Event::Start("monthly", d(2024, 2, 1)))
        .unwrap();
    assert!(held_end < february, "{strategy:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_starts_as_soon_as_its_own_days_are_done_on_async() {
    a_month_starts_as_soon_as_its_own_days_are_done_on(Strategy::Async).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_starts_as_soon_as_its_own_days_are_done_on_sync() {
    a_month_starts_as_soon_as_its_own_days_are_done_on(Strategy::Sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_day_makes_its_month_and_year_upstream_failed_and_other_months_succeed() {
    let script = Script::default();
    let fs = chain(&script);
    let bad = d(2024, 2, 10);
    script.fail(bad.clone());
    let report = fs
        .run_backfill(
            year_2024()
                .select("daily+")
                .executor(Strategy::Async)
                .max_concurrency(4),
        )
        .await
        .unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.failed, 1);
    assert_eq!(report.upstream_failed, 2);
    assert_eq!(report.succeeded, 365 + 11);
    let (partition, err) = report.failures().next().unwrap();
    assert_eq!(partition, &bad);
    assert!(err.to_string().contains("503"), "{err}");
    for (asset, p) in [("monthly", d(2024, 2, 1)), ("annual", d(2024, 1, 1))] {
        let outcome = outcome_of(&report, asset, &p);
        let PartitionOutcome::UpstreamFailed(err) = outcome else {
            panic!("{asset} {p}: {outcome:?}");
        };
        assert_error(
            err,
            ErrorKind::UpstreamFailed,
            &[
                "upstream failed",
                &format!("'{asset}'"),
                "'daily'",
                "2024-02-10",
            ],
        );
        assert_eq!(err.partition(), Some(&p));
    }
    for month in months(2024, 1, 12) {
        if month != d(2024, 2, 1) {
            assert!(
                matches!(
                    outcome_of(&report, "monthly", &month),
                    PartitionOutcome::Succeeded
                ),
                "{month}"
            );
        }
    }
    // Not attempted: the functions never ran.
    assert!(!script.started("monthly", &d(2024, 2, 1)));
    assert_eq!(script.calls("monthly"), 11);
    assert_eq!(script.calls("annual"), 0);
    assert_eq!(script.calls("daily"), 366, "every day was attempted once");
    assert_each_waited_for_its_upstream(&script);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_branches_run_in_parallel_up_to_max_concurrency() {
    let gate = Arc::new(Semaphore::new(0));
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    let branch = |name: &str| {
        let (gate, current, peak, started) = (
            Arc::clone(&gate),
            Arc::clone(&current),
            Arc::clone(&peak),
            Arc::clone(&started),
        );
        Asset::new(name)
            .partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
            .tag("kind", "branch")
            .execute(move |ctx| {
                let (gate, current, peak, started) = (
                    Arc::clone(&gate),
                    Arc::clone(&current),
                    Arc::clone(&peak),
                    Arc::clone(&started),
                );
                async move {
                    let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    started.lock().unwrap().push(ctx.asset().to_owned());
                    // Held until the test lets one through; the permit is used up.
                    gate.acquire().await.unwrap().forget();
                    current.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Error>(())
                }
            })
    };
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(8))
        .assets([branch("left"), branch("middle"), branch("right")])
        .build()
        .unwrap();
    let running = tokio::spawn({
        let fs = fs.clone();
        async move {
            fs.run_backfill(
                Backfill::range(day(2024, 1, 1), day(2024, 1, 2))
                    .select("tag:kind=branch")
                    .anchor("left")
                    .executor(Strategy::Async)
                    .max_concurrency(4),
            )
            .await
        }
    });
    // Four start although none can finish: they run at once.
    wait_until("four branches' partitions to be in flight", || {
        current.load(Ordering::SeqCst) == 4
    })
    .await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        started.lock().unwrap().len(),
        4,
        "no fifth starts while four are held"
    );
    let branches: BTreeSet<String> = started.lock().unwrap().iter().cloned().collect();
    assert!(
        branches.len() >= 2,
        "more than one branch runs at once: {branches:?}"
    );
    // Let one through at a time: each frees a slot for the next.
    gate.add_permits(1);
    wait_until("a fifth to start", || started.lock().unwrap().len() == 5).await;
    gate.add_permits(5);
    let report = running.await.unwrap().unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.succeeded, 6);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "never more than max_concurrency"
    );
}

#[tokio::test]
async fn already_materialized_partitions_are_skipped_and_release_their_downstream() {
    let script = Script::default();
    let fs = chain(&script);
    let january = Backfill::range(day(2024, 1, 1), day(2024, 1, 31));
    let first = fs.backfill("daily", january).await.unwrap();
    assert_eq!(first.succeeded, 31);

    let report = fs
        .run_backfill(
            Backfill::range(day(2024, 1, 1), day(2024, 2, 29))
                .select("daily,monthly")
                .max_concurrency(4),
        )
        .await
        .unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.skipped, 31);
    assert_eq!(report.succeeded, 29 + 2);
    for p in days((2024, 1, 1), (2024, 1, 31)) {
        assert!(
            matches!(outcome_of(&report, "daily", &p), PartitionOutcome::Skipped),
            "{p}"
        );
    }
    assert!(matches!(
        outcome_of(&report, "monthly", &d(2024, 1, 1)),
        PartitionOutcome::Succeeded
    ));
    assert_eq!(
        script.calls("daily"),
        31 + 29,
        "January's days did not run again"
    );
    assert_eq!(script.calls("monthly"), 2);
    let january: i64 = fs.load("monthly", d(2024, 1, 1)).await.unwrap();
    assert_eq!(january, 31);

    // Everything done: all skipped, nothing runs.
    let again = fs
        .run_backfill(Backfill::range(day(2024, 1, 1), day(2024, 2, 29)).select("daily,monthly"))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_counts_add_up(&again);
    assert_eq!(again.skipped, 62);
    assert_eq!(script.calls("daily"), 60);
    assert_eq!(script.calls("monthly"), 2);
}

#[tokio::test]
async fn force_reruns_materialized_partitions() {
    let script = Script::default();
    let fs = chain(&script);
    let both = || Backfill::range(day(2024, 1, 1), day(2024, 2, 29)).select("daily,monthly");
    let first = fs.run_backfill(both()).await.unwrap();
    assert_eq!(first.succeeded, 62);
    let forced = fs.run_backfill(both().force(true)).await.unwrap();
    assert_counts_add_up(&forced);
    assert_eq!((forced.succeeded, forced.skipped), (62, 0));
    assert_eq!(script.calls("daily"), 120);
    assert_eq!(script.calls("monthly"), 4);
    let plain = fs.run_backfill(both()).await.unwrap();
    assert_eq!(plain.skipped, 62);
    assert_eq!(script.calls("daily"), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_marks_the_unstarted_downstream_cancelled() {
    let script = Script::default();
    let fs = chain(&script);
    let held = d(2024, 2, 10);
    let _gate = script.gate(held.clone());
    let token = CancellationToken::new();
    let running = tokio::spawn({
        let (fs, token) = (fs.clone(), token.clone());
        async move {
            fs.run_backfill(
                Backfill::range(day(2024, 1, 1), day(2024, 2, 29))
                    .select("daily,monthly")
                    .executor(Strategy::Async)
                    .max_concurrency(4)
                    .cancel_on(token),
            )
            .await
        }
    });
    // Everything but the held day and February's month is done.
    wait_until("all but the held day to finish", || {
        let ended = script
            .events()
            .iter()
            .filter(|e| matches!(e, Event::End(..)))
            .count();
        ended == 59 + 1
    })
    .await;
    token.cancel();
    let report = running.await.unwrap().unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.total, 62);
    assert_eq!(report.succeeded, 60);
    assert_eq!(report.cancelled, 2);
    assert_eq!((report.failed, report.upstream_failed), (0, 0));
    assert!(matches!(
        outcome_of(&report, "daily", &held),
        PartitionOutcome::Cancelled
    ));
    assert!(matches!(
        outcome_of(&report, "monthly", &d(2024, 2, 1)),
        PartitionOutcome::Cancelled
    ));
    assert!(!script.started("monthly", &d(2024, 2, 1)), "never started");
}

#[tokio::test]
async fn a_fired_token_cancels_everything_before_it_starts() {
    let script = Script::default();
    let fs = chain(&script);
    let token = CancellationToken::new();
    token.cancel();
    let report = fs
        .run_backfill(
            Backfill::range(day(2024, 1, 1), day(2024, 1, 31))
                .select("daily+")
                .cancel_on(token),
        )
        .await
        .unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.cancelled, 31 + 1 + 1);
    assert!(script.events().is_empty(), "nothing started");
}

/// What one `on_progress` call saw: asset, partition, outcome name, done, total.
type ProgressCall = (String, Partition, &'static str, usize, usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_called_once_per_asset_partition_with_its_asset() {
    let script = Script::default();
    let fs = chain(&script);
    script.fail(d(2024, 2, 10));
    let calls: Arc<Mutex<Vec<ProgressCall>>> = Arc::default();
    let c = Arc::clone(&calls);
    let report = fs
        .run_backfill(
            Backfill::range(day(2024, 1, 1), day(2024, 2, 29))
                .select("daily,monthly")
                .executor(Strategy::Async)
                .max_concurrency(4)
                .on_progress(move |p: &Progress<'_>| {
                    c.lock().unwrap().push((
                        p.asset.to_owned(),
                        p.partition.clone(),
                        p.outcome.name(),
                        p.done,
                        p.total,
                    ));
                }),
        )
        .await
        .unwrap();
    assert_counts_add_up(&report);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), report.total);
    assert_eq!(report.total, 62);
    let done: Vec<usize> = calls.iter().map(|c| c.3).collect();
    assert_eq!(done, (1..=62).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.4 == 62));
    let reported: BTreeMap<(String, Partition), &'static str> = calls
        .iter()
        .map(|(asset, p, outcome, ..)| ((asset.clone(), p.clone()), *outcome))
        .collect();
    assert_eq!(reported.len(), 62, "each (asset, partition) once");
    assert_eq!(reported, outcome_names(&report));
    assert_eq!(
        reported[&("monthly".to_owned(), d(2024, 2, 1))],
        "upstream_failed"
    );
    assert_eq!(
        reported[&("monthly".to_owned(), d(2024, 1, 1))],
        "succeeded"
    );
    assert_eq!(reported[&("daily".to_owned(), d(2024, 2, 10))], "failed");
}

#[tokio::test]
async fn report_assets_lists_the_selection_in_topological_order() {
    let script = Script::default();
    let fs = chain(&script);
    let report = fs
        .run_backfill(
            Backfill::range(day(2024, 1, 1), day(2024, 12, 31)).select("annual,daily,monthly"),
        )
        .await
        .unwrap();
    assert_eq!(report.assets, ["daily", "monthly", "annual"]);
    let mut order: Vec<&str> = report.outcomes.iter().map(|r| r.asset.as_str()).collect();
    order.dedup();
    assert_eq!(
        order, report.assets,
        "outcomes asset by asset, in that order"
    );
    assert_eq!(report.succeeded, report.total);
}

// ---------------------------------------------------------------------------------------------
// 4. A cumulative asset
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cumulative_asset_runs_its_days_strictly_in_order_even_with_concurrency_8() {
    let script = Script::default();
    let s = script.clone();
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(8))
        .asset(
            Asset::new("cum")
                .partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
                .depends_on_mapped("cum", PartitionMapping::time_window().offset(-1))
                .execute(move |ctx| {
                    let s = s.clone();
                    async move {
                        let p = ctx.partition().clone();
                        s.push(Event::Start("cum", p.clone()));
                        let previous = ctx.deps::<i64>("cum")?;
                        tokio::task::yield_now().await;
                        s.push(Event::End("cum", p));
                        Ok::<_, Error>(previous.iter().map(|(_, v)| v).sum::<i64>() + 1)
                    }
                }),
        )
        .build()
        .unwrap();
    let range = || Backfill::range(day(2024, 1, 1), day(2024, 1, 20));
    let plan = fs.plan_backfill(&range().select("cum")).unwrap();
    assert_eq!(plan.waits_for("cum", &d(2024, 1, 1)), Some(0));
    assert_eq!(plan.waits_for("cum", &d(2024, 1, 2)), Some(1));

    let report = fs
        .backfill("cum", range().executor(Strategy::Async).max_concurrency(8))
        .await
        .unwrap();
    assert_counts_add_up(&report);
    assert_eq!(report.succeeded, 20, "{:?}", report.failures().next());
    assert_eq!(script.starts("cum"), days((2024, 1, 1), (2024, 1, 20)));
    // Strictly: each day started after the previous one ended.
    let expected: Vec<Event> = days((2024, 1, 1), (2024, 1, 20))
        .into_iter()
        .flat_map(|p| [Event::Start("cum", p.clone()), Event::End("cum", p)])
        .collect();
    assert_eq!(script.events(), expected);
    let last: i64 = fs.load("cum", d(2024, 1, 20)).await.unwrap();
    assert_eq!(last, 20);
}

// ---------------------------------------------------------------------------------------------
// retry_failed after a failure that blocked downstream partitions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn retry_failed_also_runs_what_the_failure_blocked() {
    let script = Script::default();
    let fs = chain(&script);
    let bad = d(2024, 2, 10);
    script.fail(bad.clone());
    let both = || Backfill::range(day(2024, 1, 1), day(2024, 2, 29)).select("daily,monthly");
    let first = fs.run_backfill(both()).await.unwrap();
    assert_eq!((first.failed, first.upstream_failed), (1, 1));

    script.failing.lock().unwrap().clear();
    let retry = fs.run_backfill(both().retry_failed(true)).await.unwrap();
    assert_counts_add_up(&retry);
    assert!(matches!(
        outcome_of(&retry, "daily", &bad),
        PartitionOutcome::Succeeded
    ));
    assert!(
        matches!(
            outcome_of(&retry, "monthly", &d(2024, 2, 1)),
            PartitionOutcome::Succeeded
        ),
        "February was never materialized: {:?}",
        outcome_of(&retry, "monthly", &d(2024, 2, 1))
    );
    let february: i64 = fs.load("monthly", d(2024, 2, 1)).await.unwrap();
    assert_eq!(february, 29);
}
