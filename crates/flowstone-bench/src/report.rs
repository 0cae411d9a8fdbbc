//! One JSON line per figure, and the statistics every benchmark quotes.

use serde_json::{Value, json};

/// Prints one figure as a single JSON line: `{"bench": name, ...fields}`.
pub fn emit(bench: &str, fields: Value) {
    let mut line = json!({ "bench": bench });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    println!("{line}");
}

/// Median of a sample (sorted in place). Returns 0 for an empty sample.
pub fn median(sample: &mut [f64]) -> f64 {
    percentile(sample, 50.0)
}

/// Nearest-rank percentile of a sample (sorted in place). Returns 0 for an empty sample.
pub fn percentile(sample: &mut [f64], pct: f64) -> f64 {
    if sample.is_empty() {
        return 0.0;
    }
    sample.sort_by(|a, b| a.total_cmp(b));
    let rank = ((pct / 100.0) * sample.len() as f64).ceil() as usize;
    sample[rank.clamp(1, sample.len()) - 1]
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if it can be read.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
