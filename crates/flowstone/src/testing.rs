//! Shared test suites (filled in below).
