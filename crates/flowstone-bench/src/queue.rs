//! Queue benchmarks.
