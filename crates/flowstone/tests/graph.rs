//! Graph validation at `build()`, and the graph's text and Mermaid renderings.

mod common;

use flowstone::{Asset, Error, ErrorKind, FlowStone};

use common::{RunLog, logged};

fn build_err(assets: Vec<Asset>) -> Error {
    FlowStone::builder()
        .assets(assets)
        .build()
        .expect_err("the graph should be rejected")
}

#[test]
fn duplicate_names_are_rejected_naming_the_asset() {
    let log = RunLog::default();
    let err = build_err(vec![
        logged("orders", &[], &log),
        logged("customers", &[], &log),
        logged("orders", &[], &log),
    ]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    assert!(err.to_string().contains("'orders'"), "{err}");
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn unknown_dependencies_are_rejected_naming_both_sides() {
    let log = RunLog::default();
    let err = build_err(vec![
        logged("raw_events", &[], &log),
        logged("daily_report", &["raw_event"], &log),
    ]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    let message = err.to_string();
    assert!(message.contains("'daily_report'"), "{message}");
    assert!(message.contains("'raw_event'"), "{message}");
    assert!(message.contains("did you mean 'raw_events'"), "{message}");
}

#[test]
fn cycles_are_rejected_naming_the_assets_of_the_cycle() {
    let log = RunLog::default();
    // x -> y -> z -> x, with an outsider that depends on the cycle and a source outside it.
    let err = build_err(vec![
        logged("source", &[], &log),
        logged("x", &["z", "source"], &log),
        logged("y", &["x"], &log),
        logged("z", &["y"], &log),
        logged("a_outsider", &["x"], &log),
    ]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    let message = err.to_string();
    assert!(message.contains("cycle"), "{message}");
    let cycle = message
        .split("cycle:")
        .nth(1)
        .unwrap_or_else(|| panic!("no cycle listed: {message}"));
    let members: Vec<&str> = cycle.split("->").map(str::trim).collect();
    // Closed path: first == last, and exactly the three assets of the cycle.
    assert_eq!(members.first(), members.last(), "{message}");
    let mut distinct: Vec<&str> = members[..members.len() - 1].to_vec();
    distinct.sort_unstable();
    assert_eq!(distinct, ["x", "y", "z"], "{message}");
    assert!(!message.contains("a_outsider"), "{message}");
    assert!(!message.contains("source"), "{message}");
}

#[test]
fn a_self_dependency_is_a_cycle() {
    let log = RunLog::default();
    let err = build_err(vec![logged("loop", &["loop"], &log)]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    assert!(err.to_string().contains("cycle"), "{err}");
    assert!(err.to_string().contains("loop -> loop"), "{err}");
}

#[test]
fn an_optional_dependency_must_be_among_the_dependencies() {
    let log = RunLog::default();
    let err = build_err(vec![
        logged("a", &[], &log),
        logged("b", &[], &log),
        logged("c", &["a"], &log).optional(["b"]),
    ]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    assert!(err.to_string().contains("'c'"), "{err}");
    assert!(err.to_string().contains("'b'"), "{err}");
    assert!(err.to_string().contains("depends_on"), "{err}");
}

#[test]
fn requiring_an_unregistered_resource_is_rejected_naming_it() {
    let log = RunLog::default();
    let err = FlowStone::builder()
        .resource_value("warehouse", 1u8)
        .asset(logged("loader", &[], &log).requires(["warehouse", "s3_client"]))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    assert!(err.to_string().contains("'s3_client'"), "{err}");
    assert!(err.to_string().contains("'loader'"), "{err}");
    assert!(!err.to_string().contains("'warehouse'"), "{err}");
}

#[test]
fn other_build_errors_name_what_is_missing() {
    // No function.
    let err = build_err(vec![Asset::new("empty")]);
    assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{err}");
    assert!(err.to_string().contains("'empty'"), "{err}");

    // An IO manager that is not registered.
    let log = RunLog::default();
    let err = FlowStone::builder()
        .asset(logged("stored", &[], &log).io_manager("s3"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("'s3'"), "{err}");

    // An executor that is not registered.
    let err = FlowStone::builder()
        .asset(logged("throttled", &[], &log).executor("rate_limited"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("'rate_limited'"), "{err}");
}

fn sample() -> FlowStone {
    let log = RunLog::default();
    FlowStone::builder()
        .asset(logged("daily_report", &["raw_events", "fx_rates"], &log).optional(["fx_rates"]))
        .asset(logged("raw_events", &[], &log).description("events as received"))
        .asset(logged("fx_rates", &[], &log))
        .asset(logged("dashboard", &["daily_report"], &log))
        .build()
        .unwrap()
}

#[test]
fn the_graph_is_in_topological_order() {
    let fs = sample();
    let order = fs.registry().topological_order();
    let pos = |name: &str| order.iter().position(|n| n == name).unwrap();
    assert_eq!(order.len(), 4);
    assert!(pos("raw_events") < pos("daily_report"));
    assert!(pos("fx_rates") < pos("daily_report"));
    assert!(pos("daily_report") < pos("dashboard"));
    assert_eq!(
        fs.registry().ancestors("dashboard").unwrap(),
        ["fx_rates", "raw_events", "daily_report"]
    );
    assert_eq!(fs.registry().dependents("raw_events"), ["daily_report"]);
}

#[test]
fn the_graph_as_text_shows_each_asset_with_its_dependencies() {
    let text = sample().registry().to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines.contains(&"daily_report <- raw_events, fx_rates?"),
        "{text}"
    );
    assert!(lines.contains(&"dashboard <- daily_report"), "{text}");
    assert!(
        lines.contains(&"raw_events  # events as received"),
        "{text}"
    );
    assert!(lines.contains(&"fx_rates"), "{text}");
}

#[test]
fn the_graph_as_mermaid_contains_every_edge() {
    let mermaid = sample().registry().to_mermaid();
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    for node in ["raw_events", "fx_rates", "daily_report", "dashboard"] {
        assert!(
            mermaid.contains(&format!("{node}[\"{node}\"]")),
            "{node}: {mermaid}"
        );
    }
    assert!(mermaid.contains("raw_events --> daily_report"), "{mermaid}");
    assert!(mermaid.contains("daily_report --> dashboard"), "{mermaid}");
    // The optional edge is drawn dashed.
    assert!(mermaid.contains("fx_rates -.-> daily_report"), "{mermaid}");
    let edges = mermaid.lines().filter(|l| l.contains("->")).count();
    assert_eq!(edges, 3, "{mermaid}");
}

#[test]
fn mermaid_ids_are_safe_for_names_with_punctuation() {
    let log = RunLog::default();
    let fs = FlowStone::builder()
        .asset(logged("raw.events", &[], &log))
        .asset(logged("report-v2", &["raw.events"], &log))
        .build()
        .unwrap();
    let mermaid = fs.registry().to_mermaid();
    assert!(mermaid.contains("raw_events[\"raw.events\"]"), "{mermaid}");
    assert!(mermaid.contains("raw_events --> report_v2"), "{mermaid}");
}

#[test]
fn mermaid_ids_stay_distinct_when_names_differ_only_in_punctuation() {
    let log = RunLog::default();
    let fs = FlowStone::builder()
        .asset(logged("raw.events", &[], &log))
        .asset(logged("raw_events", &[], &log))
        .asset(logged("report", &["raw.events"], &log))
        .build()
        .unwrap();
    let mermaid = fs.registry().to_mermaid();
    // One node line per asset, each with its own id.
    let ids: Vec<&str> = mermaid
        .lines()
        .filter(|l| l.contains("[\""))
        .map(|l| l.trim().split('[').next().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{mermaid}");
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "two assets share a Mermaid id: {mermaid}"
    );
    // The edge starts at the node labelled raw.events, not at raw_events.
    let id_of = |name: &str| {
        mermaid
            .lines()
            .find(|l| l.ends_with(&format!("[\"{name}\"]")))
            .map(|l| l.trim().split('[').next().unwrap().to_owned())
            .unwrap()
    };
    let edge = format!("{} --> {}", id_of("raw.events"), id_of("report"));
    assert!(mermaid.contains(&edge), "{edge}: {mermaid}");
    assert!(
        !mermaid.contains(&format!("{} -->", id_of("raw_events"))),
        "{mermaid}"
    );
}
