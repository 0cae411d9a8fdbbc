//! Core benchmarks.
