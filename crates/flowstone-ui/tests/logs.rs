//! What the logs say at the CLI's default levels: a failed materialization is a WARN line
//! inside an INFO span naming the asset, partition, run id and attempt, with the error's kind;
//! IO stores and loads are DEBUG events with the manager, size and duration.

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowstone::{Asset, Daily, Error, FlowStone, Run};

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn pipeline() -> FlowStone {
    FlowStone::builder()
        .asset(
            Asset::new("flaky")
                .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
                .execute(|_ctx| async {
                    Err::<u8, _>(Error::permanent("the upstream file is truncated"))
                }),
        )
        .asset(Asset::new("fine").execute(|_ctx| async { Ok::<_, Error>(vec![1u8, 2, 3]) }))
        .asset(
            Asset::new("reader")
                .depends_on(["fine"])
                .execute(|ctx| async move { Ok::<_, Error>(ctx.dep::<Vec<u8>>("fine")?.len()) }),
        )
        .build()
        .unwrap()
}

fn subscriber(level: tracing::Level, sink: &Captured) -> impl tracing::Subscriber + Send + Sync {
    let sink = sink.clone();
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish()
}

#[tokio::test]
async fn a_failure_at_warn_says_what_failed() {
    let sink = Captured::default();
    let _guard = tracing::subscriber::set_default(subscriber(tracing::Level::INFO, &sink));
    let fs = pipeline();
    let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 7).unwrap();
    assert!(fs.materialize("flaky", Run::partition(day)).await.is_err());
    let text = sink.text();
    let line = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains("failed"))
        .unwrap_or_else(|| panic!("no WARN line for the failure in:\n{text}"));
    for needle in [
        "asset=\"flaky\"",
        "partition=d:2024-01-07",
        "run_id=",
        "attempt=1",
        "error_kind=ExecutionFailed",
        "the upstream file is truncated",
    ] {
        assert!(line.contains(needle), "'{needle}' missing from: {line}");
    }
}

#[tokio::test]
async fn io_stores_and_loads_are_debug_events() {
    let sink = Captured::default();
    let _guard = tracing::subscriber::set_default(subscriber(tracing::Level::DEBUG, &sink));
    let fs = pipeline();
    fs.materialize("reader", Run::unpartitioned().with_upstream(true))
        .await
        .unwrap();
    let text = sink.text();
    let stored = text
        .lines()
        .find(|l| l.contains("stored output") && l.contains("asset=\"fine\""))
        .unwrap_or_else(|| panic!("no store event in:\n{text}"));
    assert!(stored.contains("manager=\"default\""), "{stored}");
    assert!(stored.contains("duration_us="), "{stored}");
    let loaded = text
        .lines()
        .find(|l| l.contains("loaded input"))
        .unwrap_or_else(|| panic!("no load event in:\n{text}"));
    for needle in [
        "manager=\"default\"",
        "input=fine",
        "size_bytes=",
        "duration_us=",
    ] {
        assert!(loaded.contains(needle), "'{needle}' missing from: {loaded}");
    }
}
