//! Reading what people type: partitions (through the asset's own definition), executors, times.
//! Binaries that add their own subcommands use these to read input the same way.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use flowstone::{FlowStone, Partition, Strategy};

use crate::CliError;

/// Parses `input` as a partition of `asset`, through the asset's partitions definition, so a
/// bad value gets an error naming it and the expected form. An unpartitioned asset takes no
/// partition (or a canonical encoding, a date, or a plain string).
pub fn partition(fs: &FlowStone, asset: &str, input: Option<&str>) -> Result<Partition, CliError> {
    let def = fs.registry().get(asset)?;
    match (def.partitions(), input) {
        (Some(partitions), Some(input)) => Ok(partitions.parse(input)?),
        (Some(partitions), None) => Err(CliError::usage(format!(
            "asset '{asset}' is partitioned; give --partition with {}",
            partitions.expected_form()
        ))),
        (None, None) => Ok(Partition::Unpartitioned),
        (None, Some(input)) => Ok(loose_partition(input)),
    }
}

/// A partition for an asset without a definition: a date when it reads as one, else the
/// canonical encoding when it is one (`i:42`), else the string itself.
fn loose_partition(input: &str) -> Partition {
    let input = input.trim();
    if let Ok(date) = NaiveDate::parse_from_str(input, "%Y-%m-%d") {
        return Partition::Date(date);
    }
    Partition::decode(input).unwrap_or_else(|_| Partition::Str(input.to_owned()))
}

/// The date a `--from`/`--to` bound of a backfill of `asset` stands for.
pub fn range_bound(
    fs: &FlowStone,
    asset: &str,
    flag: &str,
    input: &str,
) -> Result<NaiveDate, CliError> {
    let def = fs.registry().get(asset)?;
    if let Some(partitions) = def.partitions() {
        let partition = partitions.parse(input)?;
        return partition.date().map_err(|_| {
            CliError::usage(format!(
                "{flag} '{input}': the partitions of asset '{asset}' are not dates ({}); use \
                 --partitions a,b,c or --all",
                partitions.expected_form()
            ))
        });
    }
    NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d").map_err(|_| {
        CliError::usage(format!(
            "invalid {flag} '{input}': expected a date like 2024-01-05"
        ))
    })
}

/// The executor a person named: `auto`, `sync`, `async`, `serial`, `queue`, or any executor
/// the binary registered. Unknown names are usage errors with a suggestion.
pub fn executor(fs: &FlowStone, name: &str) -> Result<Strategy, CliError> {
    let name = name.trim();
    match name {
        "auto" => Ok(Strategy::Auto),
        "queue" => {
            crate::queue::require_queue(fs, "--executor queue")?;
            Ok(Strategy::Queue)
        }
        _ if fs.executors().contains(name) => Ok(Strategy::parse(name)),
        _ => {
            let mut names = fs.executors().names();
            names.push("auto".into());
            names.push("queue".into());
            names.sort();
            let hint = flowstone::suggest::did_you_mean(name, names.iter().map(String::as_str));
            Err(CliError::usage(format!(
                "unknown executor '{name}'{hint} (choose one of: {})",
                names.join(", ")
            )))
        }
    }
}

/// A time for `--at`: RFC 3339 (`2026-11-27T02:00:00Z`, any offset), `YYYY-MM-DD HH:MM[:SS]`
/// in UTC, or a delay from now like `+30s`, `+10m`, `+2h`, `+1d`.
pub fn time(input: &str) -> Result<DateTime<Utc>, CliError> {
    let trimmed = input.trim();
    let bad = || {
        CliError::usage(format!(
            "invalid --at '{input}': expected an RFC 3339 time like 2026-11-27T02:00:00Z, \
             '2026-11-27 02:00' (UTC), or a delay like +30s, +10m, +2h, +1d"
        ))
    };
    if let Some(delay) = trimmed.strip_prefix('+') {
        let split = delay.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = delay.split_at(split);
        let amount: i64 = digits.parse().map_err(|_| bad())?;
        let delta = match unit {
            "s" => chrono::TimeDelta::try_seconds(amount),
            "m" => chrono::TimeDelta::try_minutes(amount),
            "h" => chrono::TimeDelta::try_hours(amount),
            "d" => chrono::TimeDelta::try_days(amount),
            _ => None,
        }
        .ok_or_else(bad)?;
        return Utc::now().checked_add_signed(delta).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(t.to_utc());
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())
    .map(|t| t.and_utc())
    .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use flowstone::{Asset, StaticPartitions};

    use super::*;

    #[test]
    fn reads_times() {
        assert_eq!(
            time("2026-11-27T02:00:00Z").unwrap().to_rfc3339(),
            "2026-11-27T02:00:00+00:00"
        );
        assert_eq!(
            time("2026-11-27 02:00").unwrap().to_rfc3339(),
            "2026-11-27T02:00:00+00:00"
        );
        assert!(time("+10m").unwrap() > Utc::now());
        let err = time("tomorrow").unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().contains("'tomorrow'"));
    }

    #[test]
    fn loose_partitions_keep_their_type() {
        assert_eq!(loose_partition("i:42"), Partition::Int(42));
        assert_eq!(
            loose_partition("2024-01-05"),
            Partition::Date(NaiveDate::from_ymd_opt(2024, 1, 5).unwrap())
        );
        assert_eq!(loose_partition("eu"), Partition::Str("eu".into()));
    }

    #[test]
    fn a_range_over_partitions_that_are_not_dates_is_a_usage_error() {
        let fs = FlowStone::builder()
            .asset(
                Asset::new("per_region")
                    .partitioned_by(StaticPartitions::new(["eu", "us"]))
                    .execute(|_| async { Ok::<_, flowstone::Error>(1) }),
            )
            .build()
            .unwrap();
        let err = range_bound(&fs, "per_region", "--from", "eu").unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().contains("not dates"), "{}", err.message());
        assert!(err.message().contains("--from 'eu'"), "{}", err.message());
    }
}
