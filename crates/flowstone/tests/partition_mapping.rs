//! Partition mappings through the public API: what each mapping reads (`upstream_of`) and
//! affects (`downstream_of`) between real definitions, the checks the graph build makes and the
//! defaults it picks, and mapped dependencies end to end (reading a month's days, readiness, a
//! cumulative asset over its own previous day, `with_upstream` through the mappings, lineage).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{Datelike, TimeZone, Utc};
use flowstone::mapping::{Mapped, PartitionMapping, Sides};
use flowstone::{
    Asset, Daily, Direction, Error, ErrorKind, FlowStone, Hourly, Monthly, MultiPartitions,
    Partition, PartitionsDefinition, Run, StaticPartitions, Yearly, date_range,
};

use common::outcome::{assert_error, assert_error_in, failure, lineage, materialized, output};
use common::{Counter, day, graph};

// ---------------------------------------------------------------------------------------------
// Values and definitions
// ---------------------------------------------------------------------------------------------

type Def = Arc<dyn PartitionsDefinition>;

/// A day, a month (its first day) or a year (January 1st).
fn d(y: i32, m: u32, dd: u32) -> Partition {
    Partition::Date(day(y, m, dd))
}

/// A UTC hour.
fn hour(y: i32, m: u32, dd: u32, h: u32) -> Partition {
    Partition::DateTime(Utc.with_ymd_and_hms(y, m, dd, h, 0, 0).unwrap())
}

/// Every day from `from` to `to`, inclusive.
fn days(from: (i32, u32, u32), to: (i32, u32, u32)) -> Vec<Partition> {
    date_range(day(from.0, from.1, from.2), day(to.0, to.1, to.2))
}

/// The 24 UTC hours of a day.
fn hours_of(y: i32, m: u32, dd: u32) -> Vec<Partition> {
    (0..24).map(|h| hour(y, m, dd, h)).collect()
}

/// The 12 months of `year`.
fn months_of(year: i32) -> Vec<Partition> {
    (1..=12).map(|m| d(year, m, 1)).collect()
}

fn s(value: &str) -> Partition {
    Partition::from(value)
}

fn tuple(items: impl IntoIterator<Item = Partition>) -> Partition {
    Partition::Tuple(items.into_iter().collect())
}

fn daily(from: &str, to: &str) -> Def {
    Arc::new(Daily::from(from).to(to))
}

fn hourly(from: &str, to: &str) -> Def {
    Arc::new(Hourly::from(from).to(to))
}

fn monthly(from: &str, to: &str) -> Def {
    Arc::new(Monthly::from(from).to(to))
}

fn yearly(from: &str, to: &str) -> Def {
    Arc::new(Yearly::from(from).to(to))
}

fn statics(values: &[&str]) -> Def {
    Arc::new(StaticPartitions::new(values.iter().copied()))
}

fn inside(partitions: Vec<Partition>) -> Mapped {
    Mapped {
        partitions,
        outside: Vec::new(),
    }
}

fn split(partitions: Vec<Partition>, outside: Vec<Partition>) -> Mapped {
    Mapped {
        partitions,
        outside,
    }
}

fn sides<'a>(down: &'a Def, up: &'a Def) -> Sides<'a> {
    Sides::new(Some(down.as_ref()), Some(up.as_ref()))
}

/// What `at` (a partition of `down`) reads of `up` through `mapping`.
fn reads(mapping: &PartitionMapping, down: &Def, up: &Def, at: &Partition) -> Mapped {
    mapping
        .upstream_of(sides(down, up), at)
        .unwrap_or_else(|err| panic!("{mapping:?}: upstream_of({at}) failed: {err}"))
}

/// The partitions of `down` that read `at` (a partition of `up`) through `mapping`.
fn affects(mapping: &PartitionMapping, down: &Def, up: &Def, at: &Partition) -> Vec<Partition> {
    mapping
        .downstream_of(sides(down, up), at)
        .unwrap_or_else(|err| panic!("{mapping:?}: downstream_of({at}) failed: {err}"))
}

/// One row of an `upstream_of` table: what `at` of the asset (`down`) reads of the dependency
/// (`up`).
struct Reads {
    case: &'static str,
    mapping: PartitionMapping,
    down: Def,
    up: Def,
    at: Partition,
    expect: Mapped,
}

/// One row of a `downstream_of` table: which partitions of the asset (`down`) read `at` of the
/// dependency (`up`).
struct Affects {
    case: &'static str,
    mapping: PartitionMapping,
    down: Def,
    up: Def,
    at: Partition,
    expect: Vec<Partition>,
}

#[track_caller]
fn check_reads(rows: Vec<Reads>) {
    for row in rows {
        let got = reads(&row.mapping, &row.down, &row.up, &row.at);
        assert_eq!(got, row.expect, "{}: what {} reads", row.case, row.at);
    }
}

#[track_caller]
fn check_affects(rows: Vec<Affects>) {
    for row in rows {
        let got = affects(&row.mapping, &row.down, &row.up, &row.at);
        assert_eq!(got, row.expect, "{}: what {} affects", row.case, row.at);
    }
}

/// `downstream_of` answers exactly the inverse of `upstream_of`: for every partition `p` of
/// `up`, the partitions of `down` (in order) whose `upstream_of` holds `p`.
#[track_caller]
fn assert_inverse(case: &str, mapping: &PartitionMapping, down: &Def, up: &Def) {
    let read: Vec<(Partition, Vec<Partition>)> = down
        .partitions()
        .unwrap()
        .into_iter()
        .map(|q| {
            let partitions = reads(mapping, down, up, &q).partitions;
            (q, partitions)
        })
        .collect();
    for p in up.partitions().unwrap() {
        let expected: Vec<Partition> = read
            .iter()
            .filter(|(_, r)| r.contains(&p))
            .map(|(q, _)| q.clone())
            .collect();
        assert_eq!(
            affects(mapping, down, up, &p),
            expected,
            "{case} ({mapping:?}): what {p} affects should be what reads it"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// identity, all_partitions, last_partition
// ---------------------------------------------------------------------------------------------

#[test]
fn identity_all_and_last_partition_read_and_affect() {
    let jan = daily("2024-01-01", "2024-01-31");
    let quarter = monthly("2024-01", "2024-03");
    let regions = statics(&["us", "eu", "apac"]);
    check_reads(vec![
        Reads {
            case: "identity, day over day",
            mapping: PartitionMapping::identity(),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 5),
            expect: inside(vec![d(2024, 1, 5)]),
        },
        Reads {
            case: "identity, region over region",
            mapping: PartitionMapping::identity(),
            down: regions.clone(),
            up: regions.clone(),
            at: s("eu"),
            expect: inside(vec![s("eu")]),
        },
        Reads {
            case: "all partitions of the days, from a month",
            mapping: PartitionMapping::all_partitions(),
            down: quarter.clone(),
            up: jan.clone(),
            at: d(2024, 2, 1),
            expect: inside(days((2024, 1, 1), (2024, 1, 31))),
        },
        Reads {
            case: "all partitions of the regions, from a day",
            mapping: PartitionMapping::all_partitions(),
            down: jan.clone(),
            up: regions.clone(),
            at: d(2024, 1, 9),
            expect: inside(vec![s("us"), s("eu"), s("apac")]),
        },
        Reads {
            case: "last partition of a fixed daily range",
            mapping: PartitionMapping::last_partition(),
            down: quarter.clone(),
            up: jan.clone(),
            at: d(2024, 3, 1),
            expect: inside(vec![d(2024, 1, 31)]),
        },
        Reads {
            case: "last partition of a static set",
            mapping: PartitionMapping::last_partition(),
            down: jan.clone(),
            up: regions.clone(),
            at: d(2024, 1, 1),
            expect: inside(vec![s("apac")]),
        },
    ]);
    check_affects(vec![
        Affects {
            case: "identity",
            mapping: PartitionMapping::identity(),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 5),
            expect: vec![d(2024, 1, 5)],
        },
        Affects {
            case: "all partitions: every month reads each day",
            mapping: PartitionMapping::all_partitions(),
            down: quarter.clone(),
            up: jan.clone(),
            at: d(2024, 1, 17),
            expect: vec![d(2024, 1, 1), d(2024, 2, 1), d(2024, 3, 1)],
        },
        Affects {
            case: "last partition: the last day affects every month",
            mapping: PartitionMapping::last_partition(),
            down: quarter.clone(),
            up: jan.clone(),
            at: d(2024, 1, 31),
            expect: vec![d(2024, 1, 1), d(2024, 2, 1), d(2024, 3, 1)],
        },
        Affects {
            case: "last partition: an earlier day affects nothing",
            mapping: PartitionMapping::last_partition(),
            down: quarter.clone(),
            up: jan.clone(),
            at: d(2024, 1, 30),
            expect: vec![],
        },
        Affects {
            case: "last partition of a static set: only its last key",
            mapping: PartitionMapping::last_partition(),
            down: quarter.clone(),
            up: regions.clone(),
            at: s("us"),
            expect: vec![],
        },
    ]);
}

#[test]
fn an_unpartitioned_side_is_read_or_affected_whole() {
    let jan = daily("2024-01-01", "2024-01-31");
    let mapping = PartitionMapping::identity();
    // An unpartitioned dependency is read whole.
    let read = mapping
        .upstream_of(Sides::new(Some(jan.as_ref()), None), &d(2024, 1, 3))
        .unwrap();
    assert_eq!(read, inside(vec![Partition::Unpartitioned]));
    // An unpartitioned dependency affects every partition of the asset.
    let hit = mapping
        .downstream_of(
            Sides::new(Some(jan.as_ref()), None),
            &Partition::Unpartitioned,
        )
        .unwrap();
    assert_eq!(hit, days((2024, 1, 1), (2024, 1, 31)));
    // An unpartitioned asset over days reads them all and is affected by each.
    let all = PartitionMapping::all_partitions();
    let read = all
        .upstream_of(
            Sides::new(None, Some(jan.as_ref())),
            &Partition::Unpartitioned,
        )
        .unwrap();
    assert_eq!(read, inside(days((2024, 1, 1), (2024, 1, 31))));
    let hit = all
        .downstream_of(Sides::new(None, Some(jan.as_ref())), &d(2024, 1, 3))
        .unwrap();
    assert_eq!(hit, vec![Partition::Unpartitioned]);
}

// ---------------------------------------------------------------------------------------------
// time_window between grains
// ---------------------------------------------------------------------------------------------

#[test]
fn time_window_reads_every_overlapping_window_of_another_grain() {
    let two_years_of_days = daily("2023-01-01", "2024-12-31");
    let months = monthly("2023-01", "2024-12");
    let years = yearly("2023", "2024");
    let march_hours = hourly("2024-03-01T00:00", "2024-03-31T23:00");
    let window = PartitionMapping::time_window;
    check_reads(vec![
        Reads {
            case: "January reads its 31 days",
            mapping: window(),
            down: months.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 1, 1),
            expect: inside(days((2024, 1, 1), (2024, 1, 31))),
        },
        Reads {
            case: "April reads its 30 days",
            mapping: window(),
            down: months.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 4, 1),
            expect: inside(days((2024, 4, 1), (2024, 4, 30))),
        },
        Reads {
            case: "February of a leap year reads 29 days",
            mapping: window(),
            down: months.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 2, 1),
            expect: inside(days((2024, 2, 1), (2024, 2, 29))),
        },
        Reads {
            case: "February of 2023 reads 28 days",
            mapping: window(),
            down: months.clone(),
            up: two_years_of_days.clone(),
            at: d(2023, 2, 1),
            expect: inside(days((2023, 2, 1), (2023, 2, 28))),
        },
        Reads {
            case: "a day reads the month that contains it",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: months.clone(),
            at: d(2024, 2, 29),
            expect: inside(vec![d(2024, 2, 1)]),
        },
        Reads {
            case: "a year reads its 12 months",
            mapping: window(),
            down: years.clone(),
            up: months.clone(),
            at: d(2024, 1, 1),
            expect: inside(months_of(2024)),
        },
        Reads {
            case: "a month reads its year",
            mapping: window(),
            down: months.clone(),
            up: years.clone(),
            at: d(2023, 7, 1),
            expect: inside(vec![d(2023, 1, 1)]),
        },
        Reads {
            case: "2024 reads its 366 days",
            mapping: window(),
            down: years.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 1, 1),
            expect: inside(days((2024, 1, 1), (2024, 12, 31))),
        },
        Reads {
            case: "2023 reads its 365 days",
            mapping: window(),
            down: years.clone(),
            up: two_years_of_days.clone(),
            at: d(2023, 1, 1),
            expect: inside(days((2023, 1, 1), (2023, 12, 31))),
        },
        Reads {
            case: "a day reads its year",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: years.clone(),
            at: d(2024, 12, 31),
            expect: inside(vec![d(2024, 1, 1)]),
        },
        Reads {
            // The US changes to summer time on 2024-03-10: UTC days still have 24 hours.
            case: "a day reads its 24 UTC hours (US daylight-saving day)",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: march_hours.clone(),
            at: d(2024, 3, 10),
            expect: inside(hours_of(2024, 3, 10)),
        },
        Reads {
            // Europe changes on 2024-03-31.
            case: "a day reads its 24 UTC hours (EU daylight-saving day)",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: march_hours.clone(),
            at: d(2024, 3, 31),
            expect: inside(hours_of(2024, 3, 31)),
        },
        Reads {
            case: "an hour reads the day that contains it",
            mapping: window(),
            down: march_hours.clone(),
            up: two_years_of_days.clone(),
            at: hour(2024, 3, 10, 23),
            expect: inside(vec![d(2024, 3, 10)]),
        },
        Reads {
            case: "a month before the daily data reads days outside it",
            mapping: window(),
            down: months.clone(),
            up: daily("2024-01-29", "2024-12-31"),
            at: d(2024, 1, 1),
            expect: split(
                days((2024, 1, 29), (2024, 1, 31)),
                days((2024, 1, 1), (2024, 1, 28)),
            ),
        },
    ]);
}

#[test]
fn time_window_affects_the_partitions_of_another_grain_that_read() {
    let two_years_of_days = daily("2023-01-01", "2024-12-31");
    let months = monthly("2023-01", "2024-12");
    let years = yearly("2023", "2024");
    let march_hours = hourly("2024-03-01T00:00", "2024-03-31T23:00");
    let window = PartitionMapping::time_window;
    check_affects(vec![
        Affects {
            case: "a day affects its month",
            mapping: window(),
            down: months.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 2, 29),
            expect: vec![d(2024, 2, 1)],
        },
        Affects {
            case: "a month affects its days",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: months.clone(),
            at: d(2024, 2, 1),
            expect: days((2024, 2, 1), (2024, 2, 29)),
        },
        Affects {
            case: "a month affects its year",
            mapping: window(),
            down: years.clone(),
            up: months.clone(),
            at: d(2024, 11, 1),
            expect: vec![d(2024, 1, 1)],
        },
        Affects {
            case: "a year affects its months",
            mapping: window(),
            down: months.clone(),
            up: years.clone(),
            at: d(2024, 1, 1),
            expect: months_of(2024),
        },
        Affects {
            case: "a year affects its 366 days",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: years.clone(),
            at: d(2024, 1, 1),
            expect: days((2024, 1, 1), (2024, 12, 31)),
        },
        Affects {
            case: "the last hour of a day affects that day",
            mapping: window(),
            down: two_years_of_days.clone(),
            up: march_hours.clone(),
            at: hour(2024, 3, 31, 23),
            expect: vec![d(2024, 3, 31)],
        },
        Affects {
            case: "a day affects its 24 hours",
            mapping: window(),
            down: march_hours.clone(),
            up: two_years_of_days.clone(),
            at: d(2024, 3, 31),
            expect: hours_of(2024, 3, 31),
        },
        Affects {
            case: "a day affects no month the asset does not have",
            mapping: window(),
            down: monthly("2024-01", "2024-06"),
            up: two_years_of_days.clone(),
            at: d(2024, 7, 1),
            expect: vec![],
        },
    ]);
}

// ---------------------------------------------------------------------------------------------
// Offsets
// ---------------------------------------------------------------------------------------------

#[test]
fn offsets_shift_the_window_and_report_what_falls_outside() {
    let jan = daily("2024-01-01", "2024-01-31");
    let months = monthly("2024-01", "2024-12");
    let all_2024 = daily("2024-01-01", "2024-12-31");
    let window = PartitionMapping::time_window;
    check_reads(vec![
        Reads {
            case: "offset(-1): a day reads the previous day",
            mapping: window().offset(-1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 5),
            expect: inside(vec![d(2024, 1, 4)]),
        },
        Reads {
            case: "offset(-1): the first day has no previous day in the definition",
            mapping: window().offset(-1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 1),
            expect: split(vec![], vec![d(2023, 12, 31)]),
        },
        Reads {
            case: "offsets(-6, 0): the last 7 days",
            mapping: window().offsets(-6, 0),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 10),
            expect: inside(days((2024, 1, 4), (2024, 1, 10))),
        },
        Reads {
            case: "offsets(-6, 0) near the start: the days before it are outside",
            mapping: window().offsets(-6, 0),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 3),
            expect: split(
                days((2024, 1, 1), (2024, 1, 3)),
                days((2023, 12, 28), (2023, 12, 31)),
            ),
        },
        Reads {
            case: "offset(1) at the end of a fixed definition: the next day is outside",
            mapping: window().offset(1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 31),
            expect: split(vec![], vec![d(2024, 2, 1)]),
        },
        Reads {
            case: "offset(1) inside the definition: the next day",
            mapping: window().offset(1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 30),
            expect: inside(vec![d(2024, 1, 31)]),
        },
        Reads {
            case: "offset(-1) counts in the asset's grain: March reads February's days",
            mapping: window().offset(-1),
            down: months.clone(),
            up: all_2024.clone(),
            at: d(2024, 3, 1),
            expect: inside(days((2024, 2, 1), (2024, 2, 29))),
        },
        Reads {
            case: "offset(-1) in months from the first month: December 2023 is outside",
            mapping: window().offset(-1),
            down: months.clone(),
            up: all_2024.clone(),
            at: d(2024, 1, 1),
            expect: split(vec![], days((2023, 12, 1), (2023, 12, 31))),
        },
        Reads {
            case: "offset(-1) in days over months: the 1st reads the previous month",
            mapping: window().offset(-1),
            down: all_2024.clone(),
            up: months.clone(),
            at: d(2024, 3, 1),
            expect: inside(vec![d(2024, 2, 1)]),
        },
        Reads {
            case: "offsets(-1, 0) in months: the previous and the current month's days",
            mapping: window().offsets(-1, 0),
            down: months.clone(),
            up: all_2024.clone(),
            at: d(2024, 2, 1),
            expect: inside(days((2024, 1, 1), (2024, 2, 29))),
        },
    ]);
}

#[test]
fn offsets_affect_the_shifted_partitions() {
    let jan = daily("2024-01-01", "2024-01-31");
    let months = monthly("2024-01", "2024-12");
    let all_2024 = daily("2024-01-01", "2024-12-31");
    let window = PartitionMapping::time_window;
    check_affects(vec![
        Affects {
            case: "offset(-1): a day affects the next day",
            mapping: window().offset(-1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 4),
            expect: vec![d(2024, 1, 5)],
        },
        Affects {
            case: "offset(-1): the last day affects nothing the asset has",
            mapping: window().offset(-1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 31),
            expect: vec![],
        },
        Affects {
            case: "offsets(-6, 0): a day affects the 7 days from it",
            mapping: window().offsets(-6, 0),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 10),
            expect: days((2024, 1, 10), (2024, 1, 16)),
        },
        Affects {
            case: "offsets(-6, 0): clipped at the end of the definition",
            mapping: window().offsets(-6, 0),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 28),
            expect: days((2024, 1, 28), (2024, 1, 31)),
        },
        Affects {
            case: "offset(1): the first day is read by a day before the definition",
            mapping: window().offset(1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 1),
            expect: vec![],
        },
        Affects {
            case: "offset(1): a day affects the day before",
            mapping: window().offset(1),
            down: jan.clone(),
            up: jan.clone(),
            at: d(2024, 1, 2),
            expect: vec![d(2024, 1, 1)],
        },
        Affects {
            case: "offset(-1) in months: a January day affects February",
            mapping: window().offset(-1),
            down: months.clone(),
            up: all_2024.clone(),
            at: d(2024, 1, 15),
            expect: vec![d(2024, 2, 1)],
        },
        Affects {
            case: "offset(-1) in days over months: a month affects the days after each of its days",
            mapping: window().offset(-1),
            down: all_2024.clone(),
            up: months.clone(),
            at: d(2024, 2, 1),
            expect: days((2024, 2, 2), (2024, 3, 1)),
        },
    ]);
}

#[test]
fn time_window_downstream_of_is_the_inverse_of_upstream_of_for_every_grain_pair() {
    let defs: Vec<(&str, Def)> = vec![
        ("hours", hourly("2024-02-28T00:00", "2024-03-02T23:00")),
        ("days", daily("2024-01-25", "2024-03-05")),
        ("months", monthly("2023-12", "2024-04")),
        ("years", yearly("2023", "2024")),
    ];
    let offsets = [(0, 0), (-1, -1), (-6, 0), (1, 1), (-2, 1)];
    for (down_name, down) in &defs {
        for (up_name, up) in &defs {
            for (start, end) in offsets {
                let mapping = PartitionMapping::time_window().offsets(start, end);
                assert_inverse(&format!("{down_name} over {up_name}"), &mapping, down, up);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// static_map
// ---------------------------------------------------------------------------------------------

fn countries() -> Def {
    statics(&["ca", "de", "fr", "us"])
}

fn regions() -> Def {
    statics(&["americas", "europe", "world"])
}

/// Countries (upstream) to the regions (downstream) that read them.
fn country_regions() -> PartitionMapping {
    PartitionMapping::static_map([
        ("ca", "americas"),
        ("us", "americas"),
        ("de", "europe"),
        ("fr", "europe"),
        ("ca", "world"),
        ("de", "world"),
        ("fr", "world"),
        ("us", "world"),
    ])
}

#[test]
fn static_map_reads_and_affects_the_keys_of_its_table() {
    let (regions, countries) = (regions(), countries());
    let map = country_regions;
    check_reads(vec![
        Reads {
            case: "a region reads its countries",
            mapping: map(),
            down: regions.clone(),
            up: countries.clone(),
            at: s("americas"),
            expect: inside(vec![s("ca"), s("us")]),
        },
        Reads {
            case: "a region reads its countries (europe)",
            mapping: map(),
            down: regions.clone(),
            up: countries.clone(),
            at: s("europe"),
            expect: inside(vec![s("de"), s("fr")]),
        },
        Reads {
            case: "the world reads every country",
            mapping: map(),
            down: regions.clone(),
            up: countries.clone(),
            at: s("world"),
            expect: inside(vec![s("ca"), s("de"), s("fr"), s("us")]),
        },
    ]);
    check_affects(vec![
        Affects {
            case: "a country affects its region and the world",
            mapping: map(),
            down: regions.clone(),
            up: countries.clone(),
            at: s("us"),
            expect: vec![s("americas"), s("world")],
        },
        Affects {
            case: "a country affects its region and the world (europe)",
            mapping: map(),
            down: regions.clone(),
            up: countries.clone(),
            at: s("fr"),
            expect: vec![s("europe"), s("world")],
        },
    ]);
    assert_inverse("countries to regions", &map(), &regions, &countries);

    // A key the table does not name reads and affects nothing.
    let partial = PartitionMapping::static_map([("us", "americas")]);
    assert_eq!(
        reads(&partial, &regions, &countries, &s("europe")),
        Mapped::default()
    );
    assert!(affects(&partial, &regions, &countries, &s("de")).is_empty());
}

// ---------------------------------------------------------------------------------------------
// dimension
// ---------------------------------------------------------------------------------------------

fn by_day_and_region() -> Def {
    Arc::new(
        MultiPartitions::new()
            .dimension("date", Daily::from("2024-01-01").to("2024-02-29"))
            .dimension("region", StaticPartitions::new(["us", "eu"])),
    )
}

fn by_month_and_region() -> Def {
    Arc::new(
        MultiPartitions::new()
            .dimension("date", Monthly::from("2024-01").to("2024-02"))
            .dimension("region", StaticPartitions::new(["us", "eu"])),
    )
}

/// The same dimensions as [`by_month_and_region`], declared the other way round.
fn by_region_and_month() -> Def {
    Arc::new(
        MultiPartitions::new()
            .dimension("region", StaticPartitions::new(["us", "eu"]))
            .dimension("date", Monthly::from("2024-01").to("2024-02")),
    )
}

#[test]
fn dimension_mapping_maps_one_dimension_and_keeps_the_others() {
    let (by_day, by_month, by_region_month) = (
        by_day_and_region(),
        by_month_and_region(),
        by_region_and_month(),
    );
    let date_window = || PartitionMapping::dimension("date", PartitionMapping::time_window());
    let feb_days_in = |region: &str| -> Vec<Partition> {
        days((2024, 2, 1), (2024, 2, 29))
            .into_iter()
            .map(|day| tuple([day, s(region)]))
            .collect()
    };
    check_reads(vec![
        Reads {
            case: "(day, region) reads (its month, the same region)",
            mapping: date_window(),
            down: by_day.clone(),
            up: by_month.clone(),
            at: tuple([d(2024, 2, 14), s("eu")]),
            expect: inside(vec![tuple([d(2024, 2, 1), s("eu")])]),
        },
        Reads {
            case: "(month, region) reads (each of its days, the same region)",
            mapping: date_window(),
            down: by_month.clone(),
            up: by_day.clone(),
            at: tuple([d(2024, 2, 1), s("us")]),
            expect: inside(feb_days_in("us")),
        },
        Reads {
            case: "the upstream's tuples follow its own dimension order",
            mapping: date_window(),
            down: by_day.clone(),
            up: by_region_month.clone(),
            at: tuple([d(2024, 1, 20), s("us")]),
            expect: inside(vec![tuple([s("us"), d(2024, 1, 1)])]),
        },
        Reads {
            case: "an offset on the dimension reports what falls outside",
            mapping: PartitionMapping::dimension(
                "date",
                PartitionMapping::time_window().offset(-1),
            ),
            down: by_month.clone(),
            up: by_month.clone(),
            at: tuple([d(2024, 1, 1), s("eu")]),
            expect: split(vec![], vec![tuple([d(2023, 12, 1), s("eu")])]),
        },
    ]);
    check_affects(vec![
        Affects {
            case: "(month, region) affects (its days, the same region)",
            mapping: date_window(),
            down: by_day.clone(),
            up: by_month.clone(),
            at: tuple([d(2024, 2, 1), s("us")]),
            expect: feb_days_in("us"),
        },
        Affects {
            case: "(day, region) affects (its month, the same region)",
            mapping: date_window(),
            down: by_month.clone(),
            up: by_day.clone(),
            at: tuple([d(2024, 1, 31), s("eu")]),
            expect: vec![tuple([d(2024, 1, 1), s("eu")])],
        },
        Affects {
            case: "(region, month) upstream affects tuples in the asset's order",
            mapping: date_window(),
            down: by_day.clone(),
            up: by_region_month.clone(),
            at: tuple([s("eu"), d(2024, 2, 1)]),
            expect: feb_days_in("eu"),
        },
    ]);
    assert_inverse(
        "days x regions over months x regions",
        &date_window(),
        &by_day,
        &by_month,
    );
    assert_inverse(
        "months x regions over days x regions",
        &date_window(),
        &by_month,
        &by_day,
    );
    assert_inverse(
        "days x regions over regions x months",
        &date_window(),
        &by_day,
        &by_region_month,
    );
}

#[test]
fn dimension_mapping_onto_a_single_dimensional_upstream() {
    let by_day = by_day_and_region();
    let days_def = daily("2024-01-01", "2024-02-29");
    let months = monthly("2024-01", "2024-02");
    let same_day = || PartitionMapping::dimension("date", PartitionMapping::identity());
    let its_month = || PartitionMapping::dimension("date", PartitionMapping::time_window());
    check_reads(vec![
        Reads {
            case: "(day, region) reads the day",
            mapping: same_day(),
            down: by_day.clone(),
            up: days_def.clone(),
            at: tuple([d(2024, 1, 15), s("eu")]),
            expect: inside(vec![d(2024, 1, 15)]),
        },
        Reads {
            case: "(day, region) reads its month",
            mapping: its_month(),
            down: by_day.clone(),
            up: months.clone(),
            at: tuple([d(2024, 2, 29), s("us")]),
            expect: inside(vec![d(2024, 2, 1)]),
        },
    ]);
    let january_in_both_regions: Vec<Partition> = days((2024, 1, 1), (2024, 1, 31))
        .into_iter()
        .flat_map(|day| [tuple([day.clone(), s("us")]), tuple([day, s("eu")])])
        .collect();
    check_affects(vec![
        Affects {
            case: "a day affects it in every region",
            mapping: same_day(),
            down: by_day.clone(),
            up: days_def.clone(),
            at: d(2024, 1, 15),
            expect: vec![
                tuple([d(2024, 1, 15), s("us")]),
                tuple([d(2024, 1, 15), s("eu")]),
            ],
        },
        Affects {
            case: "a month affects each of its days in every region",
            mapping: its_month(),
            down: by_day.clone(),
            up: months.clone(),
            at: d(2024, 1, 1),
            expect: january_in_both_regions,
        },
    ]);
    assert_inverse("days x regions over days", &same_day(), &by_day, &days_def);
    assert_inverse("days x regions over months", &its_month(), &by_day, &months);
}

// ---------------------------------------------------------------------------------------------
// custom
// ---------------------------------------------------------------------------------------------

/// Teams (downstream) read their members (upstream): team `a` reads `a1` and `a2`. The calls
/// of the forward function are counted.
fn members(calls: &Counter) -> PartitionMapping {
    let calls = calls.clone();
    PartitionMapping::custom("members", move |team: &Partition| {
        calls.bump();
        let team = team.str()?;
        Ok(vec![
            Partition::from(format!("{team}1")),
            Partition::from(format!("{team}2")),
        ])
    })
}

fn teams() -> Def {
    statics(&["a", "b"])
}

/// `b2` is not a member: team `b` points at it anyway.
fn people() -> Def {
    statics(&["a1", "a2", "b1"])
}

#[test]
fn custom_mapping_reads_what_its_function_says() {
    let calls = Counter::default();
    let read = reads(&members(&calls), &teams(), &people(), &s("a"));
    assert_eq!(read, inside(vec![s("a1"), s("a2")]));
    assert_eq!(calls.get(), 1);
}

#[test]
fn custom_mapping_partition_outside_the_upstream_lands_in_outside() {
    let calls = Counter::default();
    let read = reads(&members(&calls), &teams(), &people(), &s("b"));
    assert_eq!(read, split(vec![s("b1")], vec![s("b2")]));
}

#[test]
fn custom_mapping_without_inverse_asks_its_function_for_every_downstream_partition() {
    let calls = Counter::default();
    let mapping = members(&calls);
    assert_eq!(
        affects(&mapping, &teams(), &people(), &s("a2")),
        vec![s("a")]
    );
    assert_eq!(calls.get(), 2, "asked once per team");
    assert_eq!(
        affects(&mapping, &teams(), &people(), &s("b1")),
        vec![s("b")]
    );
    assert_inverse("teams over people", &mapping, &teams(), &people());
}

#[test]
fn custom_mapping_with_downstream_answers_with_the_inverse() {
    let calls = Counter::default();
    let inverse_calls = Counter::default();
    let counted_inverse = inverse_calls.clone();
    let mapping = members(&calls).with_downstream(move |person: &Partition| {
        counted_inverse.bump();
        let person = person.str()?;
        // The team is the name without its number; `z` is no team the asset has.
        Ok(vec![Partition::from(&person[..1]), Partition::from("z")])
    });
    assert_eq!(
        affects(&mapping, &teams(), &people(), &s("a2")),
        vec![s("a")]
    );
    assert_eq!(
        affects(&mapping, &teams(), &people(), &s("b1")),
        vec![s("b")]
    );
    assert_eq!(inverse_calls.get(), 2);
    assert_eq!(calls.get(), 0, "the forward function is not asked");
}

#[test]
fn custom_mapping_failure_names_the_mapping() {
    let mapping = PartitionMapping::custom("broken", |_p: &Partition| {
        Err(Error::failed("no lookup table"))
    });
    let err = mapping
        .upstream_of(sides(&teams(), &people()), &s("a"))
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::ExecutionFailed,
        &["custom partition mapping 'broken'", "no lookup table"],
    );
}

// ---------------------------------------------------------------------------------------------
// Build-time checks and defaults
// ---------------------------------------------------------------------------------------------

/// An asset partitioned by `def` that returns 0 and reads nothing.
fn noop(name: &str, def: impl PartitionsDefinition) -> Asset {
    Asset::new(name)
        .partitioned_by(def)
        .execute(|_ctx| async move { Ok::<_, Error>(0i64) })
}

fn days_2024() -> Daily {
    Daily::from("2024-01-01").to("2024-12-31")
}

fn months_2024() -> Monthly {
    Monthly::from("2024-01").to("2024-12")
}

fn by_region() -> MultiPartitions {
    MultiPartitions::new()
        .dimension("date", days_2024())
        .dimension("region", StaticPartitions::new(["us", "eu"]))
}

#[test]
fn mappings_that_cannot_apply_are_build_errors_naming_asset_dependency_and_why() {
    let window = PartitionMapping::time_window;
    let cases: Vec<(&str, Vec<Asset>, Vec<&str>)> = vec![
        (
            "a window wider than the expansion limit",
            vec![
                noop(
                    "hourly",
                    Hourly::from("2024-01-01T00:00").to("2024-12-31T23:00"),
                ),
                noop("yearly", Yearly::from("2024").to("2024"))
                    .depends_on_mapped("hourly", window().offsets(-10_000, 0)),
            ],
            vec!["asset 'yearly'", "'hourly'", "more than the limit"],
        ),
        (
            "time window between days and regions",
            vec![
                noop("daily", days_2024()),
                noop("per_region", StaticPartitions::new(["us", "eu"]))
                    .depends_on_mapped("daily", window()),
            ],
            vec![
                "asset 'per_region'",
                "'daily'",
                "time window",
                "needs a time-based partitions definition",
                "StaticPartitions",
            ],
        ),
        (
            "time window from days to regions",
            vec![
                noop("regional", StaticPartitions::new(["us", "eu"])),
                noop("daily", days_2024()).depends_on_mapped("regional", window()),
            ],
            vec![
                "asset 'daily'",
                "'regional'",
                "needs a time-based partitions definition",
            ],
        ),
        (
            "explicit identity between months and days",
            vec![
                noop("daily", days_2024()),
                noop("monthly", months_2024())
                    .depends_on_mapped("daily", PartitionMapping::identity()),
            ],
            vec![
                "asset 'monthly'",
                "'daily'",
                "identity needs the same partitions on both sides",
                "month",
                "day",
                "time_window()",
            ],
        ),
        (
            "explicit identity from an unpartitioned asset",
            vec![
                noop("daily", days_2024()),
                Asset::new("total")
                    .depends_on_mapped("daily", PartitionMapping::identity())
                    .execute(|_ctx| async move { Ok::<_, Error>(0i64) }),
            ],
            vec!["asset 'total'", "'daily'", "all_partitions()"],
        ),
        (
            "an offset before every partition of the dependency",
            vec![
                noop("daily", days_2024()),
                noop("yearly", Yearly::from("2020").to("2024"))
                    .depends_on_mapped("daily", window().offset(-100_000)),
            ],
            vec![
                "asset 'yearly'",
                "'daily'",
                "offset -100000",
                "points before every partition of the dependency",
            ],
        ),
        (
            "an offset after every partition of the dependency",
            vec![
                noop("daily", Daily::from("2024-01-01").to("2024-01-31")),
                noop("ahead", Daily::from("2024-01-01").to("2024-01-31"))
                    .depends_on_mapped("daily", window().offset(100)),
            ],
            vec![
                "asset 'ahead'",
                "'daily'",
                "points after every partition of the dependency",
            ],
        ),
        (
            "offsets whose start is after their end",
            vec![
                noop("daily", days_2024()),
                noop("reversed", days_2024()).depends_on_mapped("daily", window().offsets(0, -1)),
            ],
            vec![
                "asset 'reversed'",
                "'daily'",
                "the start offset 0 is after the end offset -1",
            ],
        ),
        (
            "a self-dependency through identity is a cycle",
            vec![
                noop("cumulative", days_2024())
                    .depends_on_mapped("cumulative", PartitionMapping::identity()),
            ],
            vec![
                "cycle",
                "cumulative -> cumulative",
                "through identity",
                "offset(-1)",
            ],
        ),
        (
            "a self-dependency through offset(0) is a cycle",
            vec![
                noop("cumulative", days_2024()).depends_on_mapped("cumulative", window().offset(0)),
            ],
            vec![
                "cycle",
                "cumulative -> cumulative",
                "through time window",
                "offset(-1)",
            ],
        ),
        (
            "a self-dependency through offsets(-1, 0) reads the partition itself",
            vec![
                noop("cumulative", days_2024())
                    .depends_on_mapped("cumulative", window().offsets(-1, 0)),
            ],
            vec!["cycle", "cumulative -> cumulative", "offsets -1..0"],
        ),
        (
            "a static map naming a key the dependency does not have",
            vec![
                noop("countries", StaticPartitions::new(["us", "de"])),
                noop("regions", StaticPartitions::new(["americas", "europe"])).depends_on_mapped(
                    "countries",
                    PartitionMapping::static_map([("us", "americas"), ("mars", "americas")]),
                ),
            ],
            vec![
                "asset 'regions'",
                "'countries'",
                "names mars",
                "not a partition of the dependency",
            ],
        ),
        (
            "a static map naming a key the asset does not have",
            vec![
                noop("countries", StaticPartitions::new(["us", "de"])),
                noop("regions", StaticPartitions::new(["americas", "europe"])).depends_on_mapped(
                    "countries",
                    PartitionMapping::static_map([("us", "americas"), ("de", "asia")]),
                ),
            ],
            vec![
                "asset 'regions'",
                "'countries'",
                "names asia",
                "not a partition of the asset",
            ],
        ),
        (
            "a dimension mapping naming an unknown dimension",
            vec![
                noop("daily", days_2024()),
                noop("regional", by_region()).depends_on_mapped(
                    "daily",
                    PartitionMapping::dimension("day", PartitionMapping::identity()),
                ),
            ],
            vec![
                "asset 'regional'",
                "'daily'",
                "no dimension 'day'",
                "date, region",
            ],
        ),
        (
            "a dimension mapping on an asset that is not multi-dimensional",
            vec![
                noop("daily", days_2024()),
                noop("monthly", months_2024()).depends_on_mapped(
                    "daily",
                    PartitionMapping::dimension("date", PartitionMapping::time_window()),
                ),
            ],
            vec!["asset 'monthly'", "'daily'", "multi-dimensional", "'date'"],
        ),
        (
            "a dimension mapping whose inner mapping cannot apply",
            vec![
                noop("regional_src", by_region()),
                noop("regional", by_region()).depends_on_mapped(
                    "regional_src",
                    PartitionMapping::dimension("region", PartitionMapping::time_window()),
                ),
            ],
            vec![
                "asset 'regional'",
                "'regional_src'",
                "dimension 'region'",
                "time-based",
            ],
        ),
    ];
    for (case, assets, mentions) in cases {
        let err = match FlowStone::builder().assets(assets).build() {
            Ok(_) => panic!("{case}: the graph built; expected an InvalidGraph error"),
            Err(err) => err,
        };
        assert_error_in(case, &err, ErrorKind::InvalidGraph, &mentions);
    }
}

#[test]
fn mappings_that_can_apply_build() {
    let window = PartitionMapping::time_window;
    let fs = graph([
        noop("daily", days_2024()),
        noop("cumulative", days_2024()).depends_on_mapped("cumulative", window().offset(-1)),
        noop("weekly_window", days_2024()).depends_on_mapped("daily", window().offsets(-6, 0)),
        noop("regional", by_region()).depends_on_mapped(
            "daily",
            PartitionMapping::dimension("date", PartitionMapping::identity()),
        ),
    ]);
    let registry = fs.registry();
    let label = |asset: &str, dep: &str| registry.get(asset).unwrap().dependency_label(dep);
    assert_eq!(
        label("cumulative", "cumulative"),
        "cumulative [time window (offset -1)]"
    );
    assert_eq!(
        label("weekly_window", "daily"),
        "daily [time window (offsets -6..0)]"
    );
    assert_eq!(
        label("regional", "daily"),
        "daily [dimension 'date': identity]"
    );
}

#[test]
fn default_mappings_follow_the_two_definitions() {
    let days = daily("2024-01-01", "2024-01-31");
    let months = monthly("2024-01", "2024-01");
    let regions = statics(&["us", "eu"]);
    let default = |down: Option<&Def>, up: Option<&Def>| {
        PartitionMapping::default_for(Sides::new(down.map(|d| d.as_ref()), up.map(|u| u.as_ref())))
            .describe()
    };
    assert_eq!(default(None, Some(&days)), "all partitions");
    assert_eq!(default(Some(&months), Some(&days)), "time window");
    assert_eq!(default(Some(&days), Some(&months)), "time window");
    assert_eq!(default(Some(&days), Some(&days)), "identity");
    assert_eq!(default(Some(&regions), Some(&regions)), "identity");
    assert_eq!(default(Some(&days), None), "identity");
    assert_eq!(default(None, None), "identity");

    // The build gives every dependency its default.
    let fs = graph([
        noop("daily", Daily::from("2024-01-01").to("2024-01-31")),
        noop("monthly", Monthly::from("2024-01").to("2024-01")).depends_on(["daily"]),
        noop("same_day", Daily::from("2024-01-01").to("2024-01-31")).depends_on(["daily"]),
        Asset::new("total")
            .depends_on(["daily"])
            .execute(|_ctx| async move { Ok::<_, Error>(0i64) }),
    ]);
    let mapping = |asset: &str| {
        fs.registry()
            .get(asset)
            .unwrap()
            .mapping("daily")
            .unwrap_or_else(|| panic!("'{asset}' has no mapping for 'daily' after the build"))
            .describe()
    };
    assert_eq!(mapping("monthly"), "time window");
    assert_eq!(mapping("same_day"), "identity");
    assert_eq!(mapping("total"), "all partitions");
}

#[tokio::test]
async fn default_mappings_work_end_to_end() {
    let calls = Calls::default();
    let fs = graph([
        day_values(&calls, Daily::from("2024-01-01").to("2024-01-31")),
        summed(
            &calls,
            "monthly",
            "daily",
            Monthly::from("2024-01").to("2024-01"),
            None,
        ),
        Asset::new("total")
            .depends_on(["daily"])
            .execute(|ctx| async move {
                let days = ctx.deps::<i64>("daily")?;
                Ok::<_, Error>((days.len(), days.iter().map(|(_, v)| v).sum::<i64>()))
            }),
    ]);
    for day in days((2024, 1, 1), (2024, 1, 31)) {
        materialized(&fs, "daily", Run::partition(day)).await;
    }
    let month: i64 = output(&fs, "monthly", Run::partition(d(2024, 1, 1))).await;
    assert_eq!(month, (1..=31).sum::<i64>());
    let total: (usize, i64) = output(&fs, "total", Run::unpartitioned()).await;
    assert_eq!(total, (31, (1..=31).sum::<i64>()));
}

// ---------------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------------

/// How many times each (asset, partition) ran.
type Calls = Arc<Mutex<BTreeMap<(String, Partition), usize>>>;

fn count(calls: &Calls, ctx: &flowstone::Context) {
    *calls
        .lock()
        .unwrap()
        .entry((ctx.asset().to_owned(), ctx.partition().clone()))
        .or_default() += 1;
}

/// `daily`: each day's value is its day of the year.
fn day_values(calls: &Calls, def: Daily) -> Asset {
    let calls = calls.clone();
    Asset::new("daily").partitioned_by(def).execute(move |ctx| {
        let calls = calls.clone();
        async move {
            count(&calls, &ctx);
            Ok::<_, Error>(i64::from(ctx.partition().date()?.ordinal()))
        }
    })
}

/// `name`: the sum of the values of `dep` it reads, through `mapping` (the default when
/// `None`).
fn summed(
    calls: &Calls,
    name: &str,
    dep: &str,
    def: impl PartitionsDefinition,
    mapping: Option<PartitionMapping>,
) -> Asset {
    let calls = calls.clone();
    let dep_name = dep.to_owned();
    let asset = Asset::new(name).partitioned_by(def);
    let asset = match mapping {
        Some(mapping) => asset.depends_on_mapped(dep, mapping),
        None => asset.depends_on([dep]),
    };
    asset.execute(move |ctx| {
        let calls = calls.clone();
        let dep = dep_name.clone();
        async move {
            count(&calls, &ctx);
            let values = ctx.deps::<i64>(&dep)?;
            Ok::<_, Error>(values.iter().map(|(_, v)| v).sum::<i64>())
        }
    })
}

/// `monthly` returning the (day, value)s it read from `daily`, in the order it got them.
fn month_listing(mapping: PartitionMapping) -> Asset {
    Asset::new("monthly")
        .partitioned_by(months_2024())
        .depends_on_mapped("daily", mapping)
        .execute(|ctx| async move { ctx.deps::<i64>("daily") })
}

async fn materialize_days(fs: &FlowStone, from: (i32, u32, u32), to: (i32, u32, u32)) {
    for day in days(from, to) {
        materialized(fs, "daily", Run::partition(day)).await;
    }
}

#[tokio::test]
async fn a_month_reads_its_days_in_order() {
    let calls = Calls::default();
    let fs = graph([
        day_values(&calls, days_2024()),
        month_listing(PartitionMapping::time_window()),
    ]);
    // Materialized out of order: the read is in partition order anyway.
    materialize_days(&fs, (2024, 2, 15), (2024, 2, 29)).await;
    materialize_days(&fs, (2024, 2, 1), (2024, 2, 14)).await;
    let read: Vec<(Partition, i64)> = output(&fs, "monthly", Run::partition(d(2024, 2, 1))).await;
    let expected: Vec<(Partition, i64)> = (1..=29)
        .map(|n| (d(2024, 2, n), 31 + i64::from(n)))
        .collect();
    assert_eq!(read, expected);
}

#[tokio::test]
async fn ctx_dep_on_a_dependency_read_for_several_partitions_tells_to_use_deps() {
    let calls = Calls::default();
    let fs = graph([
        day_values(&calls, days_2024()),
        Asset::new("monthly")
            .partitioned_by(months_2024())
            .depends_on_mapped("daily", PartitionMapping::time_window())
            .execute(|ctx| async move { ctx.dep::<i64>("daily") }),
    ]);
    materialize_days(&fs, (2024, 2, 1), (2024, 2, 29)).await;
    let err = failure(&fs, "monthly", Run::partition(d(2024, 2, 1))).await;
    assert_error(
        &err,
        ErrorKind::InvalidOptions,
        &["'daily'", "reads 29 partitions", "ctx.deps::<T>(\"daily\")"],
    );
}

#[tokio::test]
async fn a_month_before_all_its_days_exist_is_not_ready_and_names_the_missing_days() {
    let calls = Calls::default();
    let fs = graph([
        day_values(&calls, days_2024()),
        summed(
            &calls,
            "monthly",
            "daily",
            months_2024(),
            Some(PartitionMapping::time_window()),
        ),
    ]);
    materialize_days(&fs, (2024, 1, 1), (2024, 1, 10)).await;
    let err = failure(&fs, "monthly", Run::partition(d(2024, 1, 1))).await;
    assert_error(
        &err,
        ErrorKind::DependencyNotReady,
        &[
            "'monthly'",
            "21 dependency partitions are not materialized",
            "daily d:2024-01-11",
            "daily d:2024-01-15",
            "and 16 more",
        ],
    );
    let text = err.to_string();
    assert!(
        !text.contains("d:2024-01-16"),
        "only the first few are listed: {text}"
    );
    assert!(
        !text.contains("d:2024-01-10"),
        "a present day is not missing: {text}"
    );
    assert_eq!(err.missing_dependencies(), ["daily"]);
    let ran = calls
        .lock()
        .unwrap()
        .contains_key(&("monthly".to_owned(), d(2024, 1, 1)));
    assert!(!ran, "the month's function must not run");
}

#[tokio::test]
async fn allow_missing_reads_the_days_that_are_there() {
    let calls = Calls::default();
    let fs = graph([
        day_values(&calls, days_2024()),
        month_listing(PartitionMapping::time_window().allow_missing()),
    ]);
    materialize_days(&fs, (2024, 1, 1), (2024, 1, 3)).await;
    materialized(&fs, "daily", Run::partition(d(2024, 1, 20))).await;
    let read: Vec<(Partition, i64)> = output(&fs, "monthly", Run::partition(d(2024, 1, 1))).await;
    assert_eq!(
        read,
        vec![
            (d(2024, 1, 1), 1),
            (d(2024, 1, 2), 2),
            (d(2024, 1, 3), 3),
            (d(2024, 1, 20), 20),
        ]
    );
}

#[tokio::test]
async fn days_outside_the_dependency_are_invalid_unless_allow_missing() {
    // The daily data starts on 2024-01-10: January reads nine days it does not have.
    let strict = graph([
        day_values(
            &Calls::default(),
            Daily::from("2024-01-10").to("2024-12-31"),
        ),
        month_listing(PartitionMapping::time_window()),
    ]);
    let err = failure(&strict, "monthly", Run::partition(d(2024, 1, 1))).await;
    assert_error(
        &err,
        ErrorKind::InvalidPartition,
        &[
            "d:2024-01-01",
            "d:2024-01-05",
            "and 4 more",
            "'daily'",
            ".allow_missing()",
        ],
    );

    let lenient = graph([
        day_values(
            &Calls::default(),
            Daily::from("2024-01-10").to("2024-12-31"),
        ),
        month_listing(PartitionMapping::time_window().allow_missing()),
    ]);
    materialize_days(&lenient, (2024, 1, 10), (2024, 1, 31)).await;
    let read: Vec<(Partition, i64)> =
        output(&lenient, "monthly", Run::partition(d(2024, 1, 1))).await;
    let expected: Vec<(Partition, i64)> =
        (10..=31).map(|n| (d(2024, 1, n), i64::from(n))).collect();
    assert_eq!(read, expected);
}

/// `cumulative`: the running total of `daily`, reading its own previous day. Logs how many
/// previous values each run read.
fn cumulative(read_counts: &Arc<Mutex<Vec<(Partition, usize)>>>) -> Asset {
    let read_counts = Arc::clone(read_counts);
    Asset::new("cumulative")
        .partitioned_by(days_2024())
        .depends_on(["daily"])
        .depends_on_mapped("cumulative", PartitionMapping::time_window().offset(-1))
        .execute(move |ctx| {
            let read_counts = Arc::clone(&read_counts);
            async move {
                let previous = ctx.deps::<i64>("cumulative")?;
                read_counts
                    .lock()
                    .unwrap()
                    .push((ctx.partition().clone(), previous.len()));
                let today: i64 = ctx.dep("daily")?;
                Ok::<_, Error>(previous.iter().map(|(_, v)| v).sum::<i64>() + today)
            }
        })
}

#[tokio::test]
async fn a_cumulative_asset_starts_with_nothing_and_then_reads_its_previous_day() {
    let read_counts = Arc::default();
    let fs = graph([
        day_values(&Calls::default(), days_2024()),
        cumulative(&read_counts),
    ]);
    materialize_days(&fs, (2024, 1, 1), (2024, 1, 3)).await;
    let first: i64 = output(&fs, "cumulative", Run::partition(d(2024, 1, 1))).await;
    assert_eq!(first, 1);
    let second: i64 = output(&fs, "cumulative", Run::partition(d(2024, 1, 2))).await;
    assert_eq!(second, 1 + 2);
    let third: i64 = output(&fs, "cumulative", Run::partition(d(2024, 1, 3))).await;
    assert_eq!(third, 1 + 2 + 3);
    assert_eq!(
        *read_counts.lock().unwrap(),
        vec![(d(2024, 1, 1), 0), (d(2024, 1, 2), 1), (d(2024, 1, 3), 1)]
    );
}

#[tokio::test]
async fn a_cumulative_asset_is_not_ready_when_its_previous_day_is_missing() {
    let read_counts = Arc::default();
    let fs = graph([
        day_values(&Calls::default(), days_2024()),
        cumulative(&read_counts),
    ]);
    materialize_days(&fs, (2024, 1, 1), (2024, 1, 3)).await;
    materialized(&fs, "cumulative", Run::partition(d(2024, 1, 1))).await;
    let err = failure(&fs, "cumulative", Run::partition(d(2024, 1, 3))).await;
    assert_error(
        &err,
        ErrorKind::DependencyNotReady,
        &["'cumulative'", "cumulative d:2024-01-02"],
    );
    assert!(
        !err.to_string().contains("daily d:"),
        "the daily data is there: {err}"
    );
    assert_eq!(
        read_counts.lock().unwrap().len(),
        1,
        "only the first day ran"
    );
}

#[tokio::test]
async fn with_upstream_on_a_cumulative_asset_runs_its_earlier_days_first() {
    let read_counts = Arc::default();
    let fs = graph([
        day_values(&Calls::default(), days_2024()),
        cumulative(&read_counts),
    ]);
    let fifth: i64 = output(
        &fs,
        "cumulative",
        Run::partition(d(2024, 1, 5)).with_upstream(true),
    )
    .await;
    assert_eq!(fifth, 1 + 2 + 3 + 4 + 5);
    let ran: Vec<Partition> = read_counts
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        ran,
        days((2024, 1, 1), (2024, 1, 5)),
        "each day once, in order"
    );
}

/// `daily` (2024) <- `monthly` <- `yearly`, every asset counting its calls in `calls`.
fn year_over_months_over_days(calls: &Calls) -> FlowStone {
    let window = PartitionMapping::time_window;
    graph([
        day_values(calls, days_2024()),
        summed(calls, "monthly", "daily", months_2024(), Some(window())),
        summed(
            calls,
            "yearly",
            "monthly",
            Yearly::from("2024").to("2024"),
            Some(window()),
        ),
    ])
}

/// Every (asset, partition) of [`year_over_months_over_days`] once.
fn each_once() -> BTreeMap<(String, Partition), usize> {
    let mut expected = BTreeMap::new();
    for day in days((2024, 1, 1), (2024, 12, 31)) {
        expected.insert(("daily".to_owned(), day), 1);
    }
    for month in months_of(2024) {
        expected.insert(("monthly".to_owned(), month), 1);
    }
    expected.insert(("yearly".to_owned(), d(2024, 1, 1)), 1);
    expected
}

#[tokio::test]
async fn with_upstream_on_a_year_runs_every_missing_month_and_day_exactly_once() {
    let calls = Calls::default();
    let fs = year_over_months_over_days(&calls);
    // Some upstream partitions are there already: a day, and June with its days.
    materialized(&fs, "daily", Run::partition(d(2024, 3, 5))).await;
    materialized(
        &fs,
        "monthly",
        Run::partition(d(2024, 6, 1)).with_upstream(true),
    )
    .await;
    let year: i64 = output(
        &fs,
        "yearly",
        Run::partition(d(2024, 1, 1)).with_upstream(true),
    )
    .await;
    assert_eq!(year, (1..=366).sum::<i64>());
    assert_eq!(*calls.lock().unwrap(), each_once());
}

#[tokio::test]
async fn with_upstream_runs_a_day_reached_through_two_paths_once() {
    let calls = Calls::default();
    let window = PartitionMapping::time_window;
    let counted = calls.clone();
    let fs = graph([
        day_values(&calls, Daily::from("2024-01-01").to("2024-03-31")),
        summed(
            &calls,
            "monthly",
            "daily",
            Monthly::from("2024-01").to("2024-03"),
            Some(window()),
        ),
        // The quarter reads the months and the days directly.
        Asset::new("quarter")
            .partitioned_by(Monthly::from("2024-01").to("2024-03"))
            .depends_on_mapped("monthly", window().offsets(-2, 0))
            .depends_on_mapped("daily", window().offsets(-2, 0))
            .execute(move |ctx| {
                let calls = counted.clone();
                async move {
                    count(&calls, &ctx);
                    let months = ctx.deps::<i64>("monthly")?;
                    let days = ctx.deps::<i64>("daily")?;
                    Ok::<_, Error>((months.len(), days.len()))
                }
            }),
    ]);
    let read: (usize, usize) = output(
        &fs,
        "quarter",
        Run::partition(d(2024, 3, 1)).with_upstream(true),
    )
    .await;
    assert_eq!(read, (3, 31 + 29 + 31));
    let calls = calls.lock().unwrap();
    assert!(
        calls.values().all(|n| *n == 1),
        "each partition once: {calls:?}"
    );
    assert_eq!(calls.len(), 91 + 3 + 1, "{calls:?}");
}

#[tokio::test]
async fn lineage_of_a_year_lists_its_months_then_their_days() {
    let calls = Calls::default();
    let fs = year_over_months_over_days(&calls);
    materialized(
        &fs,
        "yearly",
        Run::partition(d(2024, 1, 1)).with_upstream(true),
    )
    .await;

    let depth_1 = lineage(&fs, "yearly", d(2024, 1, 1), Direction::Upstream, 1).await;
    let at_1: Vec<(String, Partition, u32)> = depth_1
        .iter()
        .map(|e| (e.key.asset.clone(), e.key.partition.clone(), e.depth))
        .collect();
    let months: Vec<(String, Partition, u32)> = months_of(2024)
        .into_iter()
        .map(|m| ("monthly".to_owned(), m, 1))
        .collect();
    assert_eq!(sorted(at_1), months);

    let depth_2 = lineage(&fs, "yearly", d(2024, 1, 1), Direction::Upstream, 2).await;
    let mut expected = months;
    expected.extend(
        days((2024, 1, 1), (2024, 12, 31))
            .into_iter()
            .map(|p| ("daily".to_owned(), p, 2)),
    );
    let at_2: Vec<(String, Partition, u32)> = depth_2
        .iter()
        .map(|e| (e.key.asset.clone(), e.key.partition.clone(), e.depth))
        .collect();
    assert_eq!(sorted(at_2), sorted(expected));
}

#[tokio::test]
async fn lineage_of_a_day_reaches_its_month_and_year() {
    let calls = Calls::default();
    let fs = year_over_months_over_days(&calls);
    materialized(
        &fs,
        "yearly",
        Run::partition(d(2024, 1, 1)).with_upstream(true),
    )
    .await;
    let found = lineage(&fs, "daily", d(2024, 3, 5), Direction::Downstream, 3).await;
    let found: Vec<(String, Partition, u32)> = found
        .iter()
        .map(|e| (e.key.asset.clone(), e.key.partition.clone(), e.depth))
        .collect();
    assert_eq!(
        found,
        vec![
            ("monthly".to_owned(), d(2024, 3, 1), 1),
            ("yearly".to_owned(), d(2024, 1, 1), 2),
        ]
    );
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

// ---------------------------------------------------------------------------------------------
// Edge cases and known bugs
// ---------------------------------------------------------------------------------------------

#[test]
fn time_window_with_an_offset_past_the_representable_dates_is_an_error_not_a_panic() {
    let jan = daily("2024-01-01", "2024-01-31");
    for offset in [i64::MIN, i64::MAX, -1_000_000_000_000] {
        let mapping = PartitionMapping::time_window().offset(offset);
        let err = mapping
            .upstream_of(sides(&jan, &jan), &d(2024, 1, 5))
            .unwrap_err();
        assert_error_in(
            &format!("offset {offset}"),
            &err,
            ErrorKind::InvalidOptions,
            &["past the dates this library can represent"],
        );
        // Used to overflow negating i64::MIN.
        assert_eq!(
            affects(&mapping, &jan, &jan, &d(2024, 1, 5)),
            vec![],
            "offset {offset}"
        );
    }
    let err = FlowStone::builder()
        .assets([
            noop("daily", days_2024()),
            noop("far", days_2024())
                .depends_on_mapped("daily", PartitionMapping::time_window().offset(i64::MIN)),
        ])
        .build()
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidGraph,
        &[
            "asset 'far'",
            "'daily'",
            "past the dates this library can represent",
        ],
    );
}

#[test]
fn identity_reports_a_partition_the_dependency_does_not_have_as_outside() {
    let jan = daily("2024-01-01", "2024-01-31");
    let from_the_10th = daily("2024-01-10", "2024-01-31");
    let identity = PartitionMapping::identity();
    // What a same-grain time window answers for the same two definitions.
    let window = PartitionMapping::time_window();
    assert_eq!(
        reads(&window, &jan, &from_the_10th, &d(2024, 1, 5)),
        split(vec![], vec![d(2024, 1, 5)])
    );
    assert_eq!(
        reads(&identity, &jan, &from_the_10th, &d(2024, 1, 5)),
        split(vec![], vec![d(2024, 1, 5)])
    );
    // The reverse: a day the asset does not have is not one it reads.
    assert_eq!(
        affects(&window, &from_the_10th, &jan, &d(2024, 1, 5)),
        vec![]
    );
    assert_eq!(
        affects(&identity, &from_the_10th, &jan, &d(2024, 1, 5)),
        vec![]
    );
}

#[tokio::test]
async fn reading_a_day_the_dependency_does_not_have_through_identity_is_invalid_partition() {
    let fs = graph([
        day_values(
            &Calls::default(),
            Daily::from("2024-01-10").to("2024-01-31"),
        ),
        summed(
            &Calls::default(),
            "same_day",
            "daily",
            Daily::from("2024-01-01").to("2024-01-31"),
            None,
        ),
    ]);
    let err = failure(&fs, "same_day", Run::partition(d(2024, 1, 5))).await;
    assert_error(
        &err,
        ErrorKind::InvalidPartition,
        &["d:2024-01-05", "'daily'"],
    );
}

/// Fixed in mapping/dimension.rs: the dimensions a dimension mapping keeps were copied into the
/// other side's tuple without checking that side's definition.
#[test]
fn dimension_mapping_reports_tuples_the_dependency_does_not_have_as_outside() {
    let by_day = by_day_and_region();
    let us_only: Def = Arc::new(
        MultiPartitions::new()
            .dimension("date", Monthly::from("2024-01").to("2024-02"))
            .dimension("region", StaticPartitions::new(["us"])),
    );
    let mapping = PartitionMapping::dimension("date", PartitionMapping::time_window());
    let (eu_day, us_day) = (
        tuple([d(2024, 1, 5), s("eu")]),
        tuple([d(2024, 1, 5), s("us")]),
    );
    assert_eq!(
        reads(&mapping, &by_day, &us_only, &eu_day),
        split(vec![], vec![tuple([d(2024, 1, 1), s("eu")])])
    );
    assert_eq!(
        reads(&mapping, &by_day, &us_only, &us_day),
        inside(vec![tuple([d(2024, 1, 1), s("us")])])
    );
    // The other way: an upstream tuple in a region the asset does not have affects nothing.
    assert_eq!(affects(&mapping, &us_only, &by_day, &eu_day), vec![]);
    assert_eq!(
        affects(&mapping, &us_only, &by_day, &us_day),
        vec![tuple([d(2024, 1, 1), s("us")])]
    );
    assert_inverse(
        "days x (us, eu) over months x us",
        &mapping,
        &by_day,
        &us_only,
    );
    assert_inverse(
        "months x us over days x (us, eu)",
        &mapping,
        &us_only,
        &by_day,
    );
}

#[tokio::test]
async fn ctx_dep_on_a_self_dependency_that_read_nothing_does_not_call_it_optional() {
    let fs = graph([Asset::new("cumulative")
        .partitioned_by(days_2024())
        .depends_on_mapped("cumulative", PartitionMapping::time_window().offset(-1))
        .execute(|ctx| async move { ctx.dep::<i64>("cumulative") })]);
    let err = failure(&fs, "cumulative", Run::partition(d(2024, 1, 1))).await;
    assert!(
        !err.to_string().contains("optional dependency"),
        "'cumulative' is not an optional dependency: {err}"
    );
    assert!(
        err.to_string().contains("ctx.deps"),
        "the error should point at ctx.deps, which reads zero or more partitions: {err}"
    );
}
