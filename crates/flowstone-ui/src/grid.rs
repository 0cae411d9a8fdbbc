//! The partition status grid: every partition of an asset coloured by its latest status,
//! compact enough for 100 000 partitions.
//!
//! The server sends one character per partition (`.` missing, `r` running, `s` success, `f`
//! failed, `c` cancelled) and the partitions' keys in the same order, as JSON in the page; the
//! page's script draws them on one canvas. No element per partition, so the browser lays out
//! nothing in proportion to the partitions. The statuses come from one query per asset
//! ([`flowstone::store::MaterializationStore::latest_statuses`]).

use std::collections::HashMap;

use flowstone::Partition;
use flowstone::store::MaterializationStatus;

use crate::html;

/// A partition's cell: its code in the status string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// No record.
    Missing,
    /// Running.
    Running,
    /// Succeeded (or was skipped as already materialized).
    Success,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Cell {
    /// Every cell kind, in the legend's order.
    pub const ALL: [Cell; 5] = [
        Cell::Missing,
        Cell::Running,
        Cell::Success,
        Cell::Failed,
        Cell::Cancelled,
    ];

    /// The cell of a record's status.
    pub fn of(status: MaterializationStatus) -> Cell {
        match status {
            MaterializationStatus::Running => Cell::Running,
            MaterializationStatus::Failed => Cell::Failed,
            MaterializationStatus::Cancelled => Cell::Cancelled,
            // A skip means "already materialized", and any status added later shows as done.
            _ => Cell::Success,
        }
    }

    /// Its character in the status string.
    pub fn code(self) -> char {
        match self {
            Cell::Missing => '.',
            Cell::Running => 'r',
            Cell::Success => 's',
            Cell::Failed => 'f',
            Cell::Cancelled => 'c',
        }
    }

    /// Its name, as in filters (`?status=failed`) and the legend.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Missing => "missing",
            Cell::Running => "running",
            Cell::Success => "success",
            Cell::Failed => "failed",
            Cell::Cancelled => "cancelled",
        }
    }

    /// Parses [`Cell::name`].
    pub fn parse(input: &str) -> Option<Cell> {
        Cell::ALL.into_iter().find(|c| c.name() == input)
    }
}

/// The grid of one asset after filtering: keys (as people type them) and cells, in partition
/// order, and how many of all partitions have each status.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    /// The shown partitions' keys.
    pub keys: Vec<String>,
    /// Their cells' codes, one character each.
    pub codes: String,
    /// Counts of every partition (before the filters) by cell.
    pub counts: HashMap<Cell, usize>,
}

/// What to show: a status, and a range of positions in the definition's order (inclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only this status.
    pub status: Option<Cell>,
    /// From this position.
    pub from: Option<usize>,
    /// Up to this position.
    pub to: Option<usize>,
}

/// Builds the grid of `partitions` (the definition's, in order) from `latest` (encoded
/// partition, status), keeping what `filter` asks for.
pub fn build(
    partitions: &[Partition],
    latest: Vec<(String, MaterializationStatus)>,
    filter: Filter,
) -> Grid {
    let latest: HashMap<String, Cell> = latest
        .into_iter()
        .map(|(key, status)| (key, Cell::of(status)))
        .collect();
    let mut grid = Grid::default();
    let from = filter.from.unwrap_or(0);
    let to = filter.to.unwrap_or(usize::MAX);
    for (i, partition) in partitions.iter().enumerate() {
        let encoded = partition.encode();
        let cell = latest.get(&encoded).copied().unwrap_or(Cell::Missing);
        *grid.counts.entry(cell).or_default() += 1;
        if i < from || i > to || filter.status.is_some_and(|s| s != cell) {
            continue;
        }
        // A date's input text is its encoding without the `d:` tag: reusing the encoding
        // saves a second date formatting per partition, a third of the build at 100 000.
        let key = match (partition, encoded.strip_prefix("d:")) {
            (Partition::Date(_), Some(text)) => text.to_owned(),
            _ => partition.input_text(),
        };
        grid.keys.push(key);
        grid.codes.push(cell.code());
    }
    grid
}

/// The grid's markup: the canvas, its tooltip, and the data the script draws from.
pub fn render(asset: &str, grid: &Grid) -> String {
    let data = serde_json::json!({
        "asset": asset,
        "keys": grid.keys,
        "codes": grid.codes,
    });
    format!(
        "<div class=\"grid-wrap\"><canvas id=\"partition-grid\" data-count=\"{}\" \
         aria-label=\"partition status grid\"></canvas><div id=\"grid-tip\" hidden></div></div>\
         <script type=\"application/json\" id=\"grid-data\">{}</script>",
        grid.keys.len(),
        html::script_json(&data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u32) -> Vec<Partition> {
        let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        (0..n)
            .map(|i| Partition::Date(start + chrono::Days::new(u64::from(i))))
            .collect()
    }

    #[test]
    fn one_code_per_partition_in_order() {
        let parts = days(4);
        let latest = vec![
            (parts[1].encode(), MaterializationStatus::Success),
            (parts[2].encode(), MaterializationStatus::Failed),
            (parts[3].encode(), MaterializationStatus::Skipped),
        ];
        let grid = build(&parts, latest, Filter::default());
        assert_eq!(grid.codes, ".sfs");
        assert_eq!(grid.keys[0], "2024-01-01");
        assert_eq!(grid.counts[&Cell::Success], 2);
        assert_eq!(grid.counts[&Cell::Missing], 1);
    }

    #[test]
    fn filters_by_status_and_range_but_counts_all() {
        let parts = days(10);
        let latest = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let s = if i % 3 == 0 {
                    MaterializationStatus::Failed
                } else {
                    MaterializationStatus::Success
                };
                (p.encode(), s)
            })
            .collect();
        let filter = Filter {
            status: Some(Cell::Failed),
            from: Some(1),
            to: Some(6),
        };
        let grid = build(&parts, latest, filter);
        assert_eq!(grid.keys, vec!["2024-01-04", "2024-01-07"]);
        assert_eq!(grid.codes, "ff");
        assert_eq!(grid.counts[&Cell::Failed], 4);
        assert_eq!(Cell::parse("failed"), Some(Cell::Failed));
        assert_eq!(Cell::parse("nope"), None);
    }
}
