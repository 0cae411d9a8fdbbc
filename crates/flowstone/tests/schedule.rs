//! Schedules as definitions: the build's checks, when ticks fire (UTC and across daylight
//! saving changes) and which partition each targets.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use flowstone::{
    Asset, Daily, Error, ErrorKind, FlowStone, Monthly, Partition, Schedule, TickPartition,
};

fn noop(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async { Ok::<u8, Error>(1) })
}

fn graph(schedules: Vec<Schedule>) -> flowstone::Result<FlowStone> {
    let mut builder = FlowStone::builder()
        .asset(noop("daily").partitioned_by(Daily::from("2020-01-01")))
        .asset(noop("monthly").partitioned_by(Monthly::from("2020-01")))
        .asset(noop("total"))
        .asset(noop("ended").partitioned_by(Daily::from("2019-01-01").to("2019-12-31")));
    for s in schedules {
        builder = builder.schedule(s);
    }
    builder.build()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(y: i32, m: u32, d: u32) -> Partition {
    Partition::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

#[test]
fn schedules_that_cannot_work_are_build_errors_naming_them() {
    let cases: Vec<(Schedule, &[&str])> = vec![
        (
            Schedule::new("bad_cron", "61 * * * *").target("daily"),
            &["schedule 'bad_cron'", "61 * * * *", "not a cron expression"],
        ),
        (
            Schedule::new("four", "* * * *").target("daily"),
            &["schedule 'four'", "4 fields", "5 (minute"],
        ),
        (
            Schedule::new("nowhere", "5 0 * * *")
                .timezone("Mars/Olympus")
                .target("daily"),
            &["schedule 'nowhere'", "'Mars/Olympus' is not a time zone"],
        ),
        (
            Schedule::new("aimless", "5 0 * * *"),
            &["schedule 'aimless'", "no target"],
        ),
        (
            Schedule::new("typo", "5 0 * * *").target("dayly+"),
            &["schedule 'typo'", "'dayly'", "did you mean 'daily'"],
        ),
        (
            Schedule::new("past", "5 0 * * *").target("ended"),
            &["schedule 'past'", "which asset 'ended' does not have"],
        ),
        (
            Schedule::new("window_of_nothing", "5 0 * * *")
                .target("total")
                .partition(TickPartition::previous_window()),
            &["schedule 'window_of_nothing'", "'total' is not partitioned"],
        ),
    ];
    for (schedule, named) in cases {
        let err = graph(vec![schedule]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
        for part in named {
            assert!(
                err.to_string().contains(part),
                "{part:?} missing from: {err}"
            );
        }
    }
    let twice = graph(vec![
        Schedule::new("same", "5 0 * * *").target("daily"),
        Schedule::new("same", "0 1 * * *").target("daily"),
    ])
    .unwrap_err();
    assert!(
        twice.to_string().contains("'same' is declared twice"),
        "{twice}"
    );
}

#[test]
fn five_and_six_fields_fire_at_their_times() {
    let daily = Schedule::new("d", "5 0 * * *").target("daily");
    let ticks = daily.ticks_after(utc("2024-01-01T12:00:00Z"), 3).unwrap();
    let at: Vec<_> = ticks.iter().map(|t| t.at).collect();
    assert_eq!(
        at,
        vec![
            utc("2024-01-02T00:05:00Z"),
            utc("2024-01-03T00:05:00Z"),
            utc("2024-01-04T00:05:00Z")
        ]
    );
    // Six fields read seconds first; a tick exactly at `after` is not after it.
    let seconds = Schedule::new("s", "30 0 12 * * *").target("daily");
    let ticks = seconds.ticks_after(utc("2024-01-01T12:00:30Z"), 1).unwrap();
    assert_eq!(ticks[0].at, utc("2024-01-02T12:00:30Z"));
}

#[test]
fn a_local_time_the_spring_change_skips_fires_right_after_it() {
    // New York jumps from 02:00 to 03:00 on 2024-03-10.
    let s = Schedule::new("ny", "30 2 * * *")
        .timezone("America/New_York")
        .target("daily");
    let ticks = s.ticks_after(utc("2024-03-09T12:00:00Z"), 3).unwrap();
    assert_eq!(ticks[0].local.to_string(), "2024-03-10 02:30:00");
    assert_eq!(ticks[0].at, utc("2024-03-10T07:00:00Z"), "03:00 EDT");
    assert_eq!(ticks[1].at, utc("2024-03-11T06:30:00Z"), "02:30 EDT");
    // Two ticks inside the gap both fire, once each, at the gap's end.
    let halves = Schedule::new("halves", "*/30 2 * * *")
        .timezone("America/New_York")
        .target("daily");
    let ticks = halves.ticks_after(utc("2024-03-10T05:00:00Z"), 2).unwrap();
    let locals: Vec<String> = ticks.iter().map(|t| t.local.to_string()).collect();
    assert_eq!(locals, ["2024-03-10 02:00:00", "2024-03-10 02:30:00"]);
    assert!(ticks.iter().all(|t| t.at == utc("2024-03-10T07:00:00Z")));
}

#[test]
fn a_local_time_the_autumn_change_repeats_fires_once() {
    // New York goes back from 02:00 EDT to 01:00 EST on 2024-11-03.
    let daily = Schedule::new("ny", "30 1 * * *")
        .timezone("America/New_York")
        .target("daily");
    let ticks = daily.ticks_after(utc("2024-11-02T12:00:00Z"), 2).unwrap();
    assert_eq!(ticks[0].at, utc("2024-11-03T05:30:00Z"), "the EDT pass");
    assert_eq!(ticks[1].local.to_string(), "2024-11-04 01:30:00");
    // From inside the second pass of the hour, the day's tick has already fired.
    let later = daily.ticks_after(utc("2024-11-03T06:10:00Z"), 1).unwrap();
    assert_eq!(later[0].local.to_string(), "2024-11-04 01:30:00");

    let hourly = Schedule::new("h", "0 * * * *")
        .timezone("America/New_York")
        .target("daily");
    let start = chrono_tz::America::New_York
        .with_ymd_and_hms(2024, 11, 2, 23, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    let ticks = hourly.ticks_after(start, 24).unwrap();
    let locals: Vec<String> = ticks
        .iter()
        .map(|t| t.local.format("%d %H").to_string())
        .collect();
    assert_eq!(locals.first().map(String::as_str), Some("03 00"));
    assert_eq!(locals.last().map(String::as_str), Some("03 23"));
    assert_eq!(
        locals.iter().filter(|l| *l == "03 01").count(),
        1,
        "01:00 is one tick"
    );
    assert!(
        ticks.windows(2).all(|w| w[0].at < w[1].at),
        "instants only go forward"
    );
}

#[test]
fn a_tick_targets_the_window_that_just_closed_by_default() {
    let fs = graph(vec![
        Schedule::new("nightly", "5 0 * * *")
            .timezone("Europe/Berlin")
            .target("daily+"),
        Schedule::new("month_end", "0 3 1 * *").target("monthly"),
        Schedule::new("today", "0 12 * * *")
            .target("daily")
            .partition(TickPartition::current_window()),
        Schedule::new("whole", "0 * * * *").target("total"),
        Schedule::new("pinned", "0 * * * *")
            .target("daily")
            .partition(TickPartition::Fixed(day(2024, 2, 29))),
    ])
    .unwrap();
    // 00:05 in Berlin on Jan 2 is 23:05 UTC on Jan 1: the local day that closed is Jan 1.
    let nightly = fs
        .preview_schedule("nightly", utc("2024-01-01T12:00:00Z"), 2)
        .unwrap();
    assert_eq!(nightly[0].tick.at, utc("2024-01-01T23:05:00Z"));
    assert_eq!(nightly[0].partition, day(2024, 1, 1));
    assert_eq!(nightly[1].partition, day(2024, 1, 2));
    let month = fs
        .preview_schedule("month_end", utc("2024-02-15T00:00:00Z"), 1)
        .unwrap();
    assert_eq!(
        month[0].partition,
        day(2024, 2, 1),
        "February, on March 1st"
    );
    let today = fs
        .preview_schedule("today", utc("2024-02-15T00:00:00Z"), 1)
        .unwrap();
    assert_eq!(today[0].partition, day(2024, 2, 15));
    let whole = fs
        .preview_schedule("whole", utc("2024-02-15T00:00:00Z"), 1)
        .unwrap();
    assert_eq!(whole[0].partition, Partition::Unpartitioned);
    let pinned = fs
        .preview_schedule("pinned", utc("2024-02-15T00:00:00Z"), 1)
        .unwrap();
    assert_eq!(pinned[0].partition, day(2024, 2, 29));

    assert_eq!(fs.schedules().len(), 5);
    let err = fs
        .preview_schedule("nigthly", utc("2024-01-01T00:00:00Z"), 1)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("did you mean 'nightly'"), "{err}");
}

fn switched(builder: flowstone::api::Builder) -> flowstone::api::Builder {
    builder
        .asset(noop("daily").partitioned_by(Daily::from("2020-01-01")))
        .schedule(Schedule::new("nightly", "5 0 * * *").target("daily"))
        .schedule(
            Schedule::new("paused", "0 * * * *")
                .target("daily")
                .default_on(false),
        )
}

#[tokio::test]
async fn a_schedule_is_on_or_off_by_default_until_switched() {
    let fs = switched(FlowStone::builder()).build().unwrap();
    assert!(fs.schedule_enabled("nightly").await.unwrap());
    assert!(!fs.schedule_enabled("paused").await.unwrap());
    fs.set_schedule_enabled("nightly", false).await.unwrap();
    fs.set_schedule_enabled("paused", true).await.unwrap();
    assert!(!fs.schedule_enabled("nightly").await.unwrap());
    assert!(fs.schedule_enabled("paused").await.unwrap());
    let err = fs.set_schedule_enabled("nigthly", true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("did you mean 'nightly'"), "{err}");
}

flowstone_queue::both_engines!(a_switch_is_seen_by_every_process_on_the_database,);

async fn a_switch_is_seen_by_every_process_on_the_database(db: &flowstone_queue::testing::TestDb) {
    let one = switched(FlowStone::builder())
        .database(db.url())
        .connect()
        .await
        .unwrap();
    let other = switched(FlowStone::builder())
        .database(db.url())
        .connect()
        .await
        .unwrap();
    assert!(other.schedule_enabled("nightly").await.unwrap());
    one.set_schedule_enabled("nightly", false).await.unwrap();
    assert!(
        !other.schedule_enabled("nightly").await.unwrap(),
        "another instance sees it off"
    );
    other.set_schedule_enabled("nightly", true).await.unwrap();
    assert!(one.schedule_enabled("nightly").await.unwrap());
    assert!(
        !one.schedule_enabled("paused").await.unwrap(),
        "the default still holds"
    );
}
