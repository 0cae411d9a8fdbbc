//! FlowStone's benchmarks, as library functions so that the `flowstone-bench` binary and
//! `cargo bench` run the same code. Every figure is printed as one JSON line on stdout.

pub mod automation;
pub mod core;
pub mod graph;
pub mod queue;
pub mod queue_executor;
pub mod report;
pub mod ui;
