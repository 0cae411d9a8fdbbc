//! Partition values, their canonical encoding, and the partition definitions.

// `flowstone::Error` is 128+ bytes: closures returning `Result` trip this lint until it shrinks.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use flowstone::error::ErrorKind;
use flowstone::partition::{
    CustomPartitions, Daily, Hourly, MAX_PARTITIONS, Monthly, MultiPartitions, Partition,
    PartitionsDefinition, StaticPartitions, date_range,
};
use proptest::prelude::*;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn naive(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    day(y, mo, d).and_hms_opt(h, mi, s).unwrap()
}

fn s(text: &str) -> Partition {
    Partition::from(text)
}

/// Asserts `p` encodes to `encoded` and decodes back to `p`.
fn assert_vector(p: Partition, encoded: &str) {
    assert_eq!(p.encode(), encoded, "encoding of {p:?}");
    assert_eq!(
        Partition::decode(encoded).unwrap(),
        p,
        "decoding of {encoded}"
    );
}

/// Asserts `result` is an `InvalidPartition` error whose message names `input` and contains
/// every one of `mentions`. Partition values fail with a `PartitionKeyError`, definitions with
/// a `flowstone::Error`; both are checked as the `flowstone::Error` a caller's `?` makes.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug, E: Into<flowstone::Error> + std::fmt::Debug>(
    result: Result<T, E>,
    input: &str,
    mentions: &[&str],
) {
    let err: flowstone::Error = result
        .expect_err("expected an InvalidPartition error")
        .into();
    assert_eq!(err.kind(), ErrorKind::InvalidPartition, "{err}");
    assert!(
        err.message().contains(&format!("'{input}'")),
        "message does not name the input {input:?}: {err}"
    );
    for mention in mentions {
        assert!(
            err.message().contains(mention),
            "message lacks {mention:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding: fixed vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn unpartitioned_encodes_as_u() {
    assert_vector(Partition::Unpartitioned, "u:");
    assert_eq!(Partition::default(), Partition::Unpartitioned);
}

#[test]
fn date_encodes_with_d_tag() {
    assert_vector(Partition::Date(day(2024, 1, 1)), "d:2024-01-01");
}

#[test]
fn utc_datetime_encodes_with_dt_tag_and_z() {
    assert_vector(
        Partition::DateTime(utc(2024, 1, 1, 0, 0, 0)),
        "dt:2024-01-01T00:00:00Z",
    );
}

#[test]
fn utc_datetime_keeps_sub_second_precision() {
    let base = utc(2024, 1, 1, 0, 0, 0);
    let millis = base + chrono::TimeDelta::milliseconds(250);
    let nanos = base + chrono::TimeDelta::nanoseconds(123_456_789);
    let micros = base + chrono::TimeDelta::microseconds(1);
    assert_vector(Partition::DateTime(millis), "dt:2024-01-01T00:00:00.250Z");
    assert_vector(
        Partition::DateTime(micros),
        "dt:2024-01-01T00:00:00.000001Z",
    );
    assert_vector(
        Partition::DateTime(nanos),
        "dt:2024-01-01T00:00:00.123456789Z",
    );
}

#[test]
fn naive_datetime_encodes_with_ndt_tag() {
    assert_vector(
        Partition::NaiveDateTime(naive(2024, 1, 1, 12, 30, 0)),
        "ndt:2024-01-01T12:30:00",
    );
}

#[test]
fn plain_string_stays_as_it_is() {
    assert_vector(s("tenant_123"), "tenant_123");
}

#[test]
fn date_like_string_stays_a_string() {
    assert_vector(s("2024-01-01"), "2024-01-01");
    assert_eq!(Partition::decode("2024-01-01").unwrap(), s("2024-01-01"));
}

#[test]
fn integer_encodes_with_i_tag_and_comes_back_an_integer() {
    assert_vector(Partition::Int(42), "i:42");
    assert_vector(Partition::Int(-7), "i:-7");
    assert_vector(Partition::Int(i64::MIN), "i:-9223372036854775808");
    assert_vector(Partition::Int(i64::MAX), "i:9223372036854775807");
    assert_eq!(Partition::decode("i:42").unwrap().int().unwrap(), 42);
}

#[test]
fn integer_and_numeric_string_encode_differently() {
    let int = Partition::Int(42);
    let string = s("42");
    assert_ne!(int.encode(), string.encode());
    assert_vector(string, "42");
    assert_vector(int, "i:42");
}

#[test]
fn strings_with_separators_are_escaped_with_s_tag() {
    assert_vector(s("a:b"), "s:a:b");
    assert_vector(s("a|b"), "s:a|b");
    assert_vector(s("a\\b"), "s:a\\b");
    assert_vector(s("s:x"), "s:s:x");
}

#[test]
fn strings_starting_with_a_reserved_prefix_are_escaped() {
    for tag in ["u:", "d:", "dt:", "ndt:", "i:", "s:", "t:"] {
        let text = format!("{tag}2024-01-01");
        assert_vector(s(&text), &format!("s:{text}"));
    }
    assert_vector(s("u:"), "s:u:");
    assert_vector(s("i:42"), "s:i:42");
}

#[test]
fn empty_string_encodes_as_bare_s_tag() {
    assert_vector(s(""), "s:");
}

#[test]
fn tuple_joins_elements_with_pipe() {
    assert_vector(
        Partition::Tuple(vec![Partition::Date(day(2024, 1, 5)), s("eu")]),
        "t:d:2024-01-05|eu",
    );
}

#[test]
fn tuple_escapes_pipe_and_backslash_inside_elements() {
    assert_vector(
        Partition::Tuple(vec![s("a|b"), s("c\\d")]),
        "t:s:a\\|b|s:c\\\\d",
    );
}

#[test]
fn nested_tuples_round_trip() {
    let inner = Partition::Tuple(vec![Partition::Int(1), Partition::Int(2)]);
    let p = Partition::Tuple(vec![s("a|b"), inner.clone()]);
    assert_vector(p, "t:s:a\\|b|t:i:1\\|i:2");
    let deeper = Partition::Tuple(vec![
        Partition::Tuple(vec![inner.clone(), s("x")]),
        Partition::Tuple(vec![]),
        inner,
    ]);
    assert_eq!(Partition::decode(&deeper.encode()).unwrap(), deeper);
}

#[test]
fn empty_tuple_and_tuple_of_empty_string_differ() {
    let empty = Partition::Tuple(vec![]);
    let one_empty = Partition::Tuple(vec![s("")]);
    assert_vector(empty.clone(), "t:");
    assert_vector(one_empty.clone(), "t:s:");
    assert_ne!(empty.encode(), one_empty.encode());
    let two_empty = Partition::Tuple(vec![s(""), s("")]);
    assert_vector(two_empty, "t:s:|s:");
}

#[test]
fn display_prints_the_canonical_encoding() {
    let p = Partition::Tuple(vec![Partition::Int(3), s("a:b")]);
    assert_eq!(p.to_string(), p.encode());
    assert_eq!(Partition::Date(day(2024, 1, 1)).to_string(), "d:2024-01-01");
}

#[test]
fn from_str_decodes() {
    let p: Partition = "i:7".parse().unwrap();
    assert_eq!(p, Partition::Int(7));
}

#[test]
fn leap_second_round_trips() {
    let leap = day(2016, 12, 31)
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
        .unwrap();
    for p in [
        Partition::NaiveDateTime(leap),
        Partition::DateTime(leap.and_utc()),
    ] {
        assert_eq!(Partition::decode(&p.encode()).unwrap(), p, "{}", p.encode());
    }
}

#[test]
fn extreme_dates_round_trip() {
    for d in [
        NaiveDate::MIN,
        NaiveDate::MAX,
        day(0, 1, 1),
        day(-1, 12, 31),
        day(10000, 1, 1),
    ] {
        assert_eq!(
            Partition::decode(&Partition::Date(d).encode()).unwrap(),
            Partition::Date(d)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding errors
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_tag_is_invalid_partition_naming_the_input() {
    assert_invalid(Partition::decode("x:1"), "x:1", &["unknown tag 'x:'"]);
}

#[test]
fn garbage_after_a_tag_is_invalid_partition() {
    assert_invalid(
        Partition::decode("d:2024-13-01"),
        "d:2024-13-01",
        &["after 'd:'"],
    );
    assert_invalid(Partition::decode("i:forty"), "i:forty", &["after 'i:'"]);
    assert_invalid(
        Partition::decode("i:99999999999999999999"),
        "i:99999999999999999999",
        &[],
    );
    assert_invalid(
        Partition::decode("dt:2024-01-01T00:00:00"),
        "dt:2024-01-01T00:00:00",
        &["'Z'"],
    );
    assert_invalid(
        Partition::decode("ndt:yesterday"),
        "ndt:yesterday",
        &["after 'ndt:'"],
    );
    assert_invalid(Partition::decode("u:x"), "u:x", &["'u:'"]);
}

#[test]
fn empty_input_is_invalid_partition() {
    assert_invalid(Partition::decode(""), "", &["s:"]);
}

#[test]
fn bare_pipe_or_backslash_is_invalid_partition() {
    assert_invalid(Partition::decode("a|b"), "a|b", &["s:"]);
    assert_invalid(Partition::decode("a\\b"), "a\\b", &["s:"]);
}

#[test]
fn bad_escapes_in_tuples_are_invalid_partition() {
    assert_invalid(Partition::decode("t:a\\x"), "t:a\\x", &["escape"]);
    assert_invalid(Partition::decode("t:a\\"), "t:a\\", &["lone"]);
    assert_invalid(
        Partition::decode("t:a|x:1"),
        "t:a|x:1",
        &["tuple element 'x:1'"],
    );
    assert_invalid(Partition::decode("t:|a"), "t:|a", &["tuple element ''"]);
}

#[test]
fn non_canonical_spellings_are_rejected_with_the_canonical_form() {
    assert_invalid(Partition::decode("s:abc"), "s:abc", &["'abc'"]);
    assert_invalid(Partition::decode("i:+1"), "i:+1", &["'i:1'"]);
    assert_invalid(
        Partition::decode("d:2024-1-5"),
        "d:2024-1-5",
        &["'d:2024-01-05'"],
    );
    assert_invalid(
        Partition::decode("dt:2024-01-01T00:00:00.000Z"),
        "dt:2024-01-01T00:00:00.000Z",
        &["'dt:2024-01-01T00:00:00Z'"],
    );
}

// ---------------------------------------------------------------------------------------------
// Serde, conversions and accessors
// ---------------------------------------------------------------------------------------------

#[test]
fn serde_uses_the_encoded_string() {
    let p = Partition::Tuple(vec![Partition::Date(day(2024, 1, 5)), Partition::Int(42)]);
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, "\"t:d:2024-01-05|i:42\"");
    assert_eq!(serde_json::from_str::<Partition>(&json).unwrap(), p);
    let in_struct: Vec<Partition> = serde_json::from_str(r#"["u:", "42", "i:42"]"#).unwrap();
    assert_eq!(
        in_struct,
        vec![Partition::Unpartitioned, s("42"), Partition::Int(42)]
    );
}

#[test]
fn serde_rejects_bad_encodings_with_the_message() {
    let err = serde_json::from_str::<Partition>("\"x:1\"").unwrap_err();
    assert!(err.to_string().contains("invalid partition 'x:1'"), "{err}");
    assert!(serde_json::from_str::<Partition>("42").is_err());
}

#[test]
fn conversions_build_the_matching_variant() {
    assert_eq!(
        Partition::from(day(2024, 1, 1)),
        Partition::Date(day(2024, 1, 1))
    );
    let t = utc(2024, 1, 1, 3, 0, 0);
    assert_eq!(Partition::from(t), Partition::DateTime(t));
    let n = naive(2024, 1, 1, 3, 0, 0);
    assert_eq!(Partition::from(n), Partition::NaiveDateTime(n));
    assert_eq!(Partition::from(5i64), Partition::Int(5));
    assert_eq!(Partition::from(5i32), Partition::Int(5));
    assert_eq!(Partition::from("x"), Partition::Str("x".into()));
    assert_eq!(
        Partition::from(String::from("x")),
        Partition::Str("x".into())
    );
    assert_eq!(
        Partition::from(vec![Partition::Int(1)]),
        Partition::Tuple(vec![Partition::Int(1)])
    );
    assert_eq!(
        Partition::ymd(2024, 2, 29).unwrap(),
        Partition::Date(day(2024, 2, 29))
    );
    assert_invalid(Partition::ymd(2023, 2, 29), "2023-02-29", &["date"]);
}

#[test]
fn accessors_return_the_value_for_the_right_variant() {
    let t = utc(2024, 1, 1, 3, 0, 0);
    let n = naive(2024, 1, 1, 3, 0, 0);
    assert_eq!(
        Partition::Date(day(2024, 1, 1)).date().unwrap(),
        day(2024, 1, 1)
    );
    assert_eq!(Partition::DateTime(t).datetime().unwrap(), t);
    assert_eq!(Partition::NaiveDateTime(n).naive_datetime().unwrap(), n);
    assert_eq!(Partition::Int(3).int().unwrap(), 3);
    assert_eq!(s("eu").str().unwrap(), "eu");
    assert_eq!(Partition::Tuple(vec![s("a")]).tuple().unwrap(), &[s("a")]);
    assert!(Partition::Unpartitioned.is_unpartitioned());
    assert!(!s("u").is_unpartitioned());
}

#[test]
fn accessors_on_the_wrong_variant_name_the_value() {
    assert_invalid(s("eu").date(), "eu", &["date"]);
    assert_invalid(Partition::Int(1).datetime(), "i:1", &["datetime"]);
    assert_invalid(
        Partition::Int(1).naive_datetime(),
        "i:1",
        &["naive datetime"],
    );
    assert_invalid(s("42").int(), "42", &["integer"]);
    assert_invalid(Partition::Int(42).str(), "i:42", &["string"]);
    assert_invalid(Partition::Unpartitioned.tuple(), "u:", &["tuple"]);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn any_date() -> impl Strategy<Value = NaiveDate> {
    (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
        .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
}

fn any_naive_datetime() -> impl Strategy<Value = NaiveDateTime> {
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|ms| ms * 1_000_000),
        (0u32..1_000_000).prop_map(|us| us * 1000),
        0u32..1_000_000_000,
    ];
    let ordinary = (any_date(), 0u32..86_400, nanos).prop_map(|(d, secs, nanos)| {
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos).unwrap();
        d.and_time(time)
    });
    // chrono represents a leap second as second 59 with 1e9..2e9 nanoseconds.
    let leap = (
        any_date(),
        0u32..24,
        0u32..60,
        1_000_000_000u32..2_000_000_000,
    )
        .prop_map(|(d, h, m, nanos)| d.and_hms_nano_opt(h, m, 59, nanos).unwrap());
    prop_oneof![9 => ordinary, 1 => leap]
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_]{1,12}",
        "[a-z:|\\\\ ]{0,10}",
        "[a-z:|\\\\\\x00\\t\\n\\r\\x1b\\x7f\\x{85}]{0,10}",
        ("(u|d|dt|ndt|i|s|t):", "[0-9:|\\\\-]{0,12}").prop_map(|(tag, rest)| tag + &rest),
        Just(String::new()),
        Just(String::from("2024-01-01")),
        Just(String::from("42")),
    ]
}

fn any_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1)
    ]
}

fn any_partition() -> impl Strategy<Value = Partition> {
    let leaf = prop_oneof![
        Just(Partition::Unpartitioned),
        any_date().prop_map(Partition::Date),
        any_naive_datetime().prop_map(|t| Partition::DateTime(t.and_utc())),
        any_naive_datetime().prop_map(Partition::NaiveDateTime),
        any_int().prop_map(Partition::Int),
        any_string().prop_map(Partition::Str),
    ];
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Partition::Tuple)
    })
}

fn depth(p: &Partition) -> usize {
    match p {
        Partition::Tuple(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn generated_partitions_reach_depth_three() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = any_partition();
    let deepest = (0..2000)
        .map(|_| depth(&strategy.new_tree(&mut runner).unwrap().current()))
        .max()
        .unwrap();
    assert!(deepest >= 3, "deepest generated tuple nesting: {deepest}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_inverts_encode(p in any_partition()) {
        let encoded = p.encode();
        prop_assert_eq!(Partition::decode(&encoded).unwrap(), p);
    }

    #[test]
    fn serde_round_trips(p in any_partition()) {
        let json = serde_json::to_string(&p).unwrap();
        prop_assert_eq!(serde_json::from_str::<Partition>(&json).unwrap(), p);
    }

    #[test]
    fn encode_is_injective(p in any_partition(), q in any_partition()) {
        // Also follows from the round trip: encode(p) == encode(q) implies
        // p == decode(encode(p)) == decode(encode(q)) == q.
        prop_assert_eq!(p == q, p.encode() == q.encode());
    }

    #[test]
    fn encode_is_injective_on_similar_strings(a in any_string(), b in any_string()) {
        prop_assert_eq!(a == b, s(&a).encode() == s(&b).encode());
        let ta = Partition::Tuple(vec![s(&a), s(&b)]);
        let tb = Partition::Tuple(vec![s(&format!("{a}|{b}"))]);
        prop_assert_ne!(ta.encode(), tb.encode());
    }

    #[test]
    fn decode_never_panics_and_accepts_only_canonical_input(input in any::<String>()) {
        if let Ok(p) = Partition::decode(&input) {
            assert_canonical_or_legacy(&input, &p);
        }
    }

    #[test]
    fn decode_never_panics_on_structured_garbage(
        input in "[utdnise:|\\\\0-9TZ.+{}\\x00\\n\\t-]{0,40}"
    ) {
        match Partition::decode(&input) {
            Ok(p) => assert_canonical_or_legacy(&input, &p),
            Err(err) => {
                let err = flowstone::Error::from(err);
                prop_assert_eq!(err.kind(), ErrorKind::InvalidPartition);
                let named = format!("'{input}'");
                prop_assert!(err.message().contains(&named), "{}", err);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Definitions: Daily
// ---------------------------------------------------------------------------------------------

#[test]
fn daily_yields_each_day_inclusive() {
    let daily = Daily::from("2024-01-01").to("2024-01-03");
    assert_eq!(
        daily.partitions().unwrap(),
        vec![
            Partition::Date(day(2024, 1, 1)),
            Partition::Date(day(2024, 1, 2)),
            Partition::Date(day(2024, 1, 3)),
        ]
    );
}

#[test]
fn daily_accepts_naive_date_bounds() {
    let daily = Daily::from(day(2024, 2, 27)).to(day(2024, 3, 1));
    assert_eq!(daily.partitions().unwrap().len(), 4);
}

#[test]
fn daily_defaults_to_today_utc() {
    let today = Utc::now().date_naive();
    let daily = Daily::from(today - chrono::Days::new(2));
    assert_eq!(daily.end().unwrap(), today);
    let parts = daily.partitions().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.last(), Some(&Partition::Date(today)));
}

#[test]
fn daily_parses_a_date_in_range() {
    let daily = Daily::from("2024-01-01").to("2024-12-31");
    assert_eq!(
        daily.parse("2024-01-05").unwrap(),
        Partition::Date(day(2024, 1, 5))
    );
    assert_eq!(
        daily.parse(" 2024-01-05 ").unwrap(),
        Partition::Date(day(2024, 1, 5))
    );
    assert_eq!(
        daily.parse("d:2024-01-05").unwrap(),
        Partition::Date(day(2024, 1, 5))
    );
}

#[test]
fn daily_parse_outside_the_range_says_the_range() {
    let daily = Daily::from("2024-01-01").to("2024-01-31");
    assert_invalid(
        daily.parse("2024-02-01"),
        "2024-02-01",
        &["from 2024-01-01 to 2024-01-31"],
    );
    assert_invalid(
        daily.parse("2023-12-31"),
        "2023-12-31",
        &["from 2024-01-01"],
    );
}

#[test]
fn daily_parse_of_garbage_says_the_form() {
    let daily = Daily::from("2024-01-01").to("2024-01-31");
    assert_invalid(
        daily.parse("January 5th"),
        "January 5th",
        &["a date like 2024-01-05"],
    );
}

#[test]
fn daily_with_a_bad_start_reports_it_without_panicking() {
    let daily = Daily::from("not-a-date");
    assert_invalid(daily.partitions(), "not-a-date", &["start date"]);
    assert_invalid(daily.parse("2024-01-05"), "not-a-date", &["start date"]);
    let bad_end = Daily::from("2024-01-01").to("2024-02-30");
    assert_invalid(bad_end.partitions(), "2024-02-30", &["end date"]);
}

#[test]
fn daily_with_start_after_end_is_empty() {
    let daily = Daily::from("2024-02-01").to("2024-01-01");
    assert_eq!(daily.partitions().unwrap(), vec![]);
}

#[test]
fn daily_refuses_huge_expansions() {
    let daily = Daily::from(NaiveDate::MIN).to(NaiveDate::MAX);
    let err = daily.partitions().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions);
    assert!(err.message().contains(&MAX_PARTITIONS.to_string()), "{err}");
    // Parsing does not expand, so it still works on a huge range.
    assert_eq!(
        daily.parse("2024-01-05").unwrap(),
        Partition::Date(day(2024, 1, 5))
    );
}

#[test]
fn daily_contains_checks_the_range_and_variant() {
    let daily = Daily::from("2024-01-01").to("2024-01-31");
    assert!(daily.contains(&Partition::Date(day(2024, 1, 31))).unwrap());
    assert!(!daily.contains(&Partition::Date(day(2024, 2, 1))).unwrap());
    assert!(!daily.contains(&s("2024-01-05")).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Definitions: Hourly
// ---------------------------------------------------------------------------------------------

#[test]
fn hourly_yields_utc_hour_boundaries() {
    let hourly = Hourly::from("2024-01-01T22:00").to("2024-01-02T01:00");
    assert_eq!(
        hourly.partitions().unwrap(),
        vec![
            Partition::DateTime(utc(2024, 1, 1, 22, 0, 0)),
            Partition::DateTime(utc(2024, 1, 1, 23, 0, 0)),
            Partition::DateTime(utc(2024, 1, 2, 0, 0, 0)),
            Partition::DateTime(utc(2024, 1, 2, 1, 0, 0)),
        ]
    );
}

#[test]
fn hourly_parses_the_common_forms() {
    let hourly = Hourly::from("2024-01-01T00:00").to("2024-12-31T23:00");
    let expected = Partition::DateTime(utc(2024, 1, 5, 3, 0, 0));
    for input in [
        "2024-01-05T03:00",
        "2024-01-05T03:00:00Z",
        "2024-01-05 03:00",
        "2024-01-05 03:00:00",
        "2024-01-05T04:00:00+01:00",
        "dt:2024-01-05T03:00:00Z",
    ] {
        assert_eq!(hourly.parse(input).unwrap(), expected, "{input}");
    }
}

#[test]
fn hourly_rejects_times_off_the_hour() {
    let hourly = Hourly::from("2024-01-01T00:00").to("2024-12-31T23:00");
    assert_invalid(
        hourly.parse("2024-01-05T03:30"),
        "2024-01-05T03:30",
        &["an hour like"],
    );
    assert_invalid(hourly.parse("2024-01-05"), "2024-01-05", &["an hour like"]);
}

#[test]
fn hourly_parse_outside_the_range_says_the_range() {
    let hourly = Hourly::from("2024-01-01T00:00").to("2024-01-01T23:00");
    assert_invalid(
        hourly.parse("2024-01-02T00:00"),
        "2024-01-02T00:00",
        &["from 2024-01-01T00:00 to 2024-01-01T23:00"],
    );
}

#[test]
fn hourly_accepts_chrono_bounds() {
    let hourly = Hourly::from(day(2024, 1, 1)).to(utc(2024, 1, 1, 2, 0, 0));
    assert_eq!(hourly.partitions().unwrap().len(), 3);
    let naive_bound = Hourly::from(naive(2024, 1, 1, 0, 0, 0)).to("2024-01-01T00:00");
    assert_eq!(naive_bound.partitions().unwrap().len(), 1);
}

#[test]
fn hourly_with_a_bound_off_the_hour_reports_it() {
    let hourly = Hourly::from("2024-01-01T00:15");
    assert_invalid(hourly.partitions(), "2024-01-01T00:15", &["start"]);
}

#[test]
fn hourly_defaults_to_the_current_hour() {
    let yesterday = Utc::now().date_naive() - chrono::Days::new(1);
    let hourly = Hourly::from(yesterday);
    let end = hourly.end().unwrap();
    assert_eq!(end.timestamp() % 3600, 0);
    assert!(Utc::now() - end < chrono::TimeDelta::hours(1));
    // Yesterday's 24 hours, plus today's up to the current one (unless the hour just turned).
    let count = hourly.partitions().unwrap().len();
    assert!((24..=49).contains(&count), "{count}");
}

// ---------------------------------------------------------------------------------------------
// Definitions: Monthly
// ---------------------------------------------------------------------------------------------

#[test]
fn monthly_yields_first_days() {
    let monthly = Monthly::from("2023-11").to("2024-02");
    assert_eq!(
        monthly.partitions().unwrap(),
        vec![
            Partition::Date(day(2023, 11, 1)),
            Partition::Date(day(2023, 12, 1)),
            Partition::Date(day(2024, 1, 1)),
            Partition::Date(day(2024, 2, 1)),
        ]
    );
}

#[test]
fn monthly_parses_month_and_first_day() {
    let monthly = Monthly::from("2024-01").to("2024-12");
    let march = Partition::Date(day(2024, 3, 1));
    assert_eq!(monthly.parse("2024-03").unwrap(), march);
    assert_eq!(monthly.parse("2024-03-01").unwrap(), march);
    assert_eq!(monthly.parse("d:2024-03-01").unwrap(), march);
}

#[test]
fn monthly_rejects_a_day_that_is_not_a_month_start() {
    let monthly = Monthly::from("2024-01").to("2024-12");
    assert_invalid(
        monthly.parse("2024-03-15"),
        "2024-03-15",
        &["not the first day of a month"],
    );
    assert_invalid(monthly.parse("March"), "March", &["a month like 2024-03"]);
}

#[test]
fn monthly_parse_outside_the_range_says_the_range() {
    let monthly = Monthly::from("2024-01").to("2024-06");
    assert_invalid(
        monthly.parse("2024-07"),
        "2024-07",
        &["from 2024-01 to 2024-06"],
    );
}

#[test]
fn monthly_bounds_must_be_month_starts() {
    assert_invalid(
        Monthly::from("2024-01-15").partitions(),
        "2024-01-15",
        &["start"],
    );
    assert_invalid(
        Monthly::from(day(2024, 1, 15)).partitions(),
        "2024-01-15",
        &["start"],
    );
    assert_eq!(
        Monthly::from(day(2024, 1, 1))
            .to(day(2024, 3, 1))
            .partitions()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn monthly_defaults_to_the_current_month() {
    let today = Utc::now().date_naive();
    let end = Monthly::from("2024-01").end().unwrap();
    assert_eq!(
        end.format("%Y-%m").to_string(),
        today.format("%Y-%m").to_string()
    );
    assert_eq!(end.format("%d").to_string(), "01");
}

// ---------------------------------------------------------------------------------------------
// Definitions: StaticPartitions
// ---------------------------------------------------------------------------------------------

#[test]
fn static_yields_strings_in_order() {
    let regions = StaticPartitions::new(["us", "eu", "apac"]);
    assert_eq!(
        regions.partitions().unwrap(),
        vec![s("us"), s("eu"), s("apac")]
    );
}

#[test]
fn static_parse_checks_membership_and_lists_allowed_values() {
    let regions = StaticPartitions::new(["us", "eu", "apac"]);
    assert_eq!(regions.parse("eu").unwrap(), s("eu"));
    assert_eq!(regions.parse(" eu ").unwrap(), s("eu"));
    assert_invalid(regions.parse("mars"), "mars", &["one of: us, eu, apac"]);
}

#[test]
fn static_parse_accepts_the_encoded_form_of_escaped_values() {
    let odd = StaticPartitions::new(["a:b", ""]);
    assert_eq!(odd.parse("a:b").unwrap(), s("a:b"));
    assert_eq!(odd.parse("s:a:b").unwrap(), s("a:b"));
    assert_eq!(odd.parse("s:").unwrap(), s(""));
}

#[test]
fn static_error_lists_only_the_first_few_values() {
    let many = StaticPartitions::new((0..50).map(|i| format!("v{i}")));
    let err = many.parse("nope").unwrap_err();
    assert!(err.message().contains("v9, ... (40 more)"), "{err}");
    assert!(!err.message().contains("v10"), "{err}");
}

#[test]
fn static_duplicates_are_reported() {
    let dup = StaticPartitions::new(["us", "eu", "us"]);
    let err = dup.partitions().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions);
    assert!(err.message().contains("'us'"), "{err}");
    assert!(dup.parse("us").is_err());
}

// ---------------------------------------------------------------------------------------------
// Definitions: MultiPartitions
// ---------------------------------------------------------------------------------------------

fn date_region() -> MultiPartitions {
    MultiPartitions::new()
        .dimension("date", Daily::from("2024-01-01").to("2024-01-02"))
        .dimension("region", StaticPartitions::new(["us", "eu"]))
}

#[test]
fn multi_yields_the_cartesian_product_first_dimension_outermost() {
    let d1 = Partition::Date(day(2024, 1, 1));
    let d2 = Partition::Date(day(2024, 1, 2));
    assert_eq!(
        date_region().partitions().unwrap(),
        vec![
            Partition::Tuple(vec![d1.clone(), s("us")]),
            Partition::Tuple(vec![d1, s("eu")]),
            Partition::Tuple(vec![d2.clone(), s("us")]),
            Partition::Tuple(vec![d2, s("eu")]),
        ]
    );
}

#[test]
fn multi_parses_pipe_comma_and_encoded_forms() {
    let expected = Partition::Tuple(vec![Partition::Date(day(2024, 1, 2)), s("eu")]);
    let multi = date_region();
    assert_eq!(multi.parse("2024-01-02|eu").unwrap(), expected);
    assert_eq!(multi.parse("2024-01-02, eu").unwrap(), expected);
    assert_eq!(multi.parse("t:d:2024-01-02|eu").unwrap(), expected);
}

#[test]
fn multi_parse_errors_name_the_dimension() {
    let multi = date_region();
    assert_invalid(
        multi.parse("2024-01-02|mars"),
        "2024-01-02|mars",
        &["dimension 'region'", "mars"],
    );
    assert_invalid(
        multi.parse("2024-03-01|eu"),
        "2024-03-01|eu",
        &["dimension 'date'"],
    );
    assert_invalid(
        multi.parse("t:d:2024-01-02|mars"),
        "t:d:2024-01-02|mars",
        &["dimension 'region'"],
    );
}

#[test]
fn multi_parse_with_the_wrong_number_of_parts_says_the_form() {
    assert_invalid(
        date_region().parse("2024-01-02"),
        "2024-01-02",
        &["2 values separated by '|' (date|region)"],
    );
}

#[test]
fn multi_without_dimensions_or_with_duplicates_is_reported() {
    assert_eq!(
        MultiPartitions::new().partitions().unwrap_err().kind(),
        ErrorKind::InvalidOptions
    );
    let dup = MultiPartitions::new()
        .dimension("a", StaticPartitions::new(["x"]))
        .dimension("a", StaticPartitions::new(["y"]));
    let err = dup.parse("x|y").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions);
    assert!(err.message().contains("'a'"), "{err}");
}

#[test]
fn multi_refuses_huge_products() {
    let big = StaticPartitions::new((0..5000).map(|i| i.to_string()));
    let multi = MultiPartitions::new()
        .dimension("a", big.clone())
        .dimension("b", big);
    let err = multi.partitions().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions);
    assert_eq!(
        multi.parse("1|2").unwrap(),
        Partition::Tuple(vec![s("1"), s("2")])
    );
}

#[test]
fn multi_accepts_shared_definitions_and_checks_membership() {
    let shared: std::sync::Arc<dyn PartitionsDefinition> =
        std::sync::Arc::new(StaticPartitions::new(["x", "y"]));
    let multi = MultiPartitions::new()
        .dimension("a", shared.clone())
        .dimension("b", shared);
    assert_eq!(multi.partitions().unwrap().len(), 4);
    assert!(
        multi
            .contains(&Partition::Tuple(vec![s("x"), s("y")]))
            .unwrap()
    );
    assert!(!multi.contains(&Partition::Tuple(vec![s("x")])).unwrap());
    assert_eq!(multi.dimension_names().collect::<Vec<_>>(), ["a", "b"]);
}

// ---------------------------------------------------------------------------------------------
// Definitions: CustomPartitions
// ---------------------------------------------------------------------------------------------

#[test]
fn custom_lists_what_the_function_returns() {
    let custom = CustomPartitions::new(|| Ok(vec![s("t1"), s("t2")]));
    assert_eq!(custom.partitions().unwrap(), vec![s("t1"), s("t2")]);
}

#[test]
fn custom_default_parse_decodes_then_falls_back_to_a_string() {
    let custom = CustomPartitions::new(|| {
        Ok(vec![
            s("tenant_1"),
            Partition::Int(42),
            s("a:b"),
            Partition::Date(day(2024, 1, 5)),
        ])
    });
    assert_eq!(custom.parse("tenant_1").unwrap(), s("tenant_1"));
    assert_eq!(custom.parse("i:42").unwrap(), Partition::Int(42));
    assert_eq!(custom.parse("42").unwrap(), Partition::Int(42));
    assert_eq!(custom.parse("a:b").unwrap(), s("a:b"));
    assert_eq!(
        custom.parse("2024-01-05").unwrap(),
        Partition::Date(day(2024, 1, 5))
    );
    assert_invalid(
        custom.parse("tenant_9"),
        "tenant_9",
        &["one of: tenant_1, i:42"],
    );
}

#[test]
fn custom_default_parse_prefers_the_exact_value() {
    let custom = CustomPartitions::new(|| Ok(vec![s("42"), Partition::Int(42)]));
    assert_eq!(custom.parse("42").unwrap(), s("42"));
    assert_eq!(custom.parse("i:42").unwrap(), Partition::Int(42));
}

#[test]
fn custom_parser_replaces_the_default_and_result_must_be_a_member() {
    let custom = CustomPartitions::new(|| Ok(vec![s("us"), s("eu")]))
        .with_parser(|input| Ok(Partition::from(input.to_lowercase())))
        .with_expected_form("a region code like US or eu");
    assert_eq!(custom.parse("EU").unwrap(), s("eu"));
    assert_invalid(
        custom.parse("MARS"),
        "MARS",
        &["a region code like US or eu"],
    );
}

#[test]
fn custom_errors_from_the_function_are_returned() {
    let custom = CustomPartitions::new(|| Err(flowstone::Error::store("table missing")));
    assert_eq!(custom.partitions().unwrap_err().kind(), ErrorKind::Store);
    assert_eq!(custom.parse("x").unwrap_err().kind(), ErrorKind::Store);
}

// ---------------------------------------------------------------------------------------------
// date_range and trait objects
// ---------------------------------------------------------------------------------------------

#[test]
fn date_range_is_inclusive() {
    assert_eq!(
        date_range(day(2024, 2, 28), day(2024, 3, 1)),
        vec![
            Partition::Date(day(2024, 2, 28)),
            Partition::Date(day(2024, 2, 29)),
            Partition::Date(day(2024, 3, 1)),
        ]
    );
    assert_eq!(date_range(day(2024, 1, 1), day(2024, 1, 1)).len(), 1);
}

#[test]
fn date_range_is_empty_when_from_is_after_to() {
    assert!(date_range(day(2024, 1, 2), day(2024, 1, 1)).is_empty());
}

#[test]
fn definitions_work_as_trait_objects() {
    let defs: Vec<Box<dyn PartitionsDefinition>> = vec![
        Box::new(Daily::from("2024-01-01").to("2024-01-02")),
        Box::new(Hourly::from("2024-01-01T00:00").to("2024-01-01T01:00")),
        Box::new(Monthly::from("2024-01").to("2024-02")),
        Box::new(StaticPartitions::new(["a", "b"])),
        Box::new(date_region()),
        Box::new(CustomPartitions::new(|| Ok(vec![s("x"), s("y")]))),
    ];
    for def in &defs {
        let parts = def.partitions().unwrap();
        assert!(!parts.is_empty(), "{def:?}");
        for p in &parts {
            assert!(def.contains(p).unwrap(), "{def:?} should contain {p}");
            assert_eq!(&def.parse(&p.encode()).unwrap(), p, "{def:?} parse of {p}");
        }
        assert!(!def.expected_form().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Control characters: the `e:` form, and the legacy form that still decodes
// ---------------------------------------------------------------------------------------------

/// How versions before the `e:` tag encoded `p`: strings verbatim, control characters and all.
/// An independent oracle for the one kind of non-canonical input `decode` accepts.
fn legacy_encode(p: &Partition) -> String {
    match p {
        Partition::Str(text) if text.chars().any(char::is_control) => {
            if text.contains([':', '|', '\\']) {
                format!("s:{text}")
            } else {
                text.clone()
            }
        }
        Partition::Tuple(items) => {
            let elements: Vec<String> = items
                .iter()
                .map(|item| {
                    legacy_encode(item)
                        .replace('\\', "\\\\")
                        .replace('|', "\\|")
                })
                .collect();
            format!("t:{}", elements.join("|"))
        }
        other => other.encode(),
    }
}

/// `decode(input) == p`: `input` is `p`'s canonical encoding, or, when it holds a raw control
/// character, exactly the legacy encoding of `p`.
#[track_caller]
fn assert_canonical_or_legacy(input: &str, p: &Partition) {
    if input.contains(char::is_control) {
        assert_eq!(legacy_encode(p), input, "accepted non-legacy {input:?}");
    } else {
        assert_eq!(p.encode(), input, "accepted non-canonical {input:?}");
    }
}

#[test]
fn strings_with_control_characters_are_escaped_with_e_tag() {
    assert_vector(s("a\nb"), "e:a\\nb");
    assert_vector(s("\0"), "e:\\0");
    assert_vector(s("x\r\n\t|y:\\"), "e:x\\r\\n\\t|y:\\\\");
    assert_vector(s("\u{1b}\u{7f}\u{9f}"), "e:\\u{1b}\\u{7f}\\u{9f}");
    assert_vector(
        Partition::Tuple(vec![s("a\tb|c"), s("\0"), Partition::Int(1)]),
        "t:e:a\\\\tb\\|c|e:\\\\0|i:1",
    );
}

#[test]
fn encodings_hold_no_control_character() {
    let p = Partition::Tuple(vec![
        s("\0\r\n\t"),
        Partition::Tuple(vec![s("\u{1}\u{85}"), s("plain")]),
    ]);
    assert!(!p.encode().contains(char::is_control), "{}", p.encode());
    assert_eq!(Partition::decode(&p.encode()).unwrap(), p);
}

#[test]
fn legacy_raw_control_characters_decode_to_the_same_partition() {
    for p in [
        s("a\nb"),
        s("a:\0"),
        Partition::Tuple(vec![s("x|\t"), Partition::Tuple(vec![s("\r\n"), s("\\")])]),
    ] {
        let legacy = legacy_encode(&p);
        assert!(legacy.contains(char::is_control), "{legacy:?}");
        assert_eq!(Partition::decode(&legacy).unwrap(), p, "{legacy:?}");
        assert_eq!(
            serde_json::from_value::<Partition>(legacy.into()).unwrap(),
            p
        );
    }
}

#[test]
fn escapes_outside_the_canonical_set_are_invalid_partition() {
    assert_invalid(Partition::decode("e:abc"), "e:abc", &["'abc'"]);
    assert_invalid(Partition::decode("e:\\u{a}"), "e:\\u{a}", &["'e:\\n'"]);
    assert_invalid(Partition::decode("e:\\q"), "e:\\q", &["\\q", "escapes"]);
    assert_invalid(
        Partition::decode("e:\\u{110000}"),
        "e:\\u{110000}",
        &["Unicode"],
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn strings_with_control_characters_round_trip_without_them(
        text in "[a-z:|\\\\\\x00-\\x1f\\x7f-\\x{9f}]{0,12}",
    ) {
        for p in [s(&text), Partition::Tuple(vec![s(&text), s(&text)])] {
            let encoded = p.encode();
            prop_assert!(!encoded.contains(char::is_control), "{:?}", encoded);
            prop_assert_eq!(Partition::decode(&encoded).unwrap(), p.clone());
            prop_assert_eq!(Partition::decode(&legacy_encode(&p)).unwrap(), p);
        }
    }
}
