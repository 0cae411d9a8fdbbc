//! Automation (placeholder while written).
mod common;
