//! Output for people (aligned tables) and for scripts (`--json`, one document on stdout).

use std::time::Duration;

use flowstone::Partition;
use flowstone::store::Materialization;
use serde_json::{Value, json};

/// A table printed with aligned columns.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, columns padded to their widest cell; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.header);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// A partition as people type it: `2024-01-05` for a date, the string for a string, `-` for
/// none, the canonical encoding for anything else.
pub fn partition_text(partition: &Partition) -> String {
    partition.input_text()
}

/// A partition for JSON: the same text people see, and the canonical encoding.
pub fn partition_json(partition: &Partition) -> Value {
    json!({ "text": partition_text(partition), "encoded": partition.encode() })
}

/// A duration for people: `850 ms`, `1.2 s`, `3 m 05 s`.
pub fn duration_text(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{} m {:02} s", secs / 60, secs % 60)
    }
}

/// A materialization record as JSON.
pub fn materialization_json(m: &Materialization) -> Value {
    json!({
        "asset": m.asset,
        "partition": partition_json(&m.partition),
        "run_id": m.run_id.to_string(),
        "status": m.status.as_str(),
        "executor": m.executor,
        "attempt": m.attempt,
        "started_at": m.started_at.to_rfc3339(),
        "finished_at": m.finished_at.map(|t| t.to_rfc3339()),
        "duration_ms": m.duration.map(|d| d.as_millis() as u64),
        "error": m.error.as_ref().map(|e| json!({ "kind": e.kind, "message": e.message })),
        "metadata": m.metadata,
    })
}

/// Materialization records as a table.
pub fn materializations_table(records: &[Materialization], with_asset: bool) -> Table {
    let mut header = vec![];
    if with_asset {
        header.push("ASSET");
    }
    header.extend([
        "PARTITION",
        "STATUS",
        "ATTEMPT",
        "EXECUTOR",
        "STARTED (UTC)",
        "DURATION",
        "RUN",
        "ERROR",
    ]);
    let mut table = Table::new(header);
    for m in records {
        let mut row = vec![];
        if with_asset {
            row.push(m.asset.clone());
        }
        row.extend([
            partition_text(&m.partition),
            m.status.to_string(),
            m.attempt.to_string(),
            m.executor.clone(),
            m.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            m.duration.map(duration_text).unwrap_or_default(),
            short_id(&m.run_id.to_string()),
            m.error
                .as_ref()
                .map(|e| one_line(&e.message))
                .unwrap_or_default(),
        ]);
        table.row(row);
    }
    table
}

/// The last 12 characters of an id: enough to tell runs apart in a table.
pub fn short_id(id: &str) -> String {
    let start = id.len().saturating_sub(12);
    id[start..].to_owned()
}

/// The first line of `text`.
pub fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Prints `value` as one JSON document on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut table = Table::new(["A", "LONG HEADER", "C"]);
        table.row(["value", "x", "last"]);
        assert_eq!(
            table.render(),
            "A      LONG HEADER  C\nvalue  x            last\n"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration_text(Duration::from_millis(1_250)), "1.2 s");
        assert_eq!(duration_text(Duration::from_secs(185)), "3 m 05 s");
    }
}
