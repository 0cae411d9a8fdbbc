//! Limits on what a user hands in, checked where it enters (the builder, the executor's
//! constructor, the run's options), each failure an `InvalidOptions` error naming the option.
//!
//! One place, so the same option means the same thing everywhere: a concurrency of 0 is refused
//! by TaskAsync, backfills and worker queues alike, and a huge one (`usize::MAX`) is clamped to
//! [`MAX_CONCURRENCY`] instead of overflowing a semaphore or a SQL `LIMIT`.

use std::time::Duration;

use crate::error::{Error, Result};

/// The most jobs anything runs at once; larger requests are clamped to it. (About a million:
/// far beyond what one process can run, and well inside every integer type the limit passes
/// through, `i32` SQL parameters included.)
pub const MAX_CONCURRENCY: usize = 1 << 20;

// The queue's workers clamp to their own limit, which is the same.
#[cfg(feature = "database")]
const _: () = assert!(MAX_CONCURRENCY == flowstone_queue::MAX_CONCURRENCY);

/// The longest asset name, in bytes. Names are index keys in every store (with the partition
/// and run id beside them), directory names of the file IO manager, and parts of queue rows; 255
/// bytes fits all of them.
pub const MAX_ASSET_NAME_BYTES: usize = 255;

/// Checks a concurrency option called `option` (`max_concurrency`, `concurrency of queue
/// 'assets'`, ...): at least 1, and clamped to [`MAX_CONCURRENCY`].
pub fn concurrency(option: &str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(Error::invalid_options(format!(
            "{option} must be at least 1 (got 0)"
        )));
    }
    Ok(value.min(MAX_CONCURRENCY))
}

/// Checks a timeout option called `option`: longer than zero (a zero timeout would fail every
/// attempt before it starts).
pub fn timeout(option: &str, value: Duration) -> Result<Duration> {
    if value.is_zero() {
        return Err(Error::invalid_options(format!(
            "{option} must be longer than zero; leave it unset for the default"
        )));
    }
    Ok(value)
}

/// Checks an asset name: not blank, at most [`MAX_ASSET_NAME_BYTES`] bytes, no control
/// characters (PostgreSQL text refuses NUL, and a newline would break every listing).
pub fn asset_name(name: &str) -> Result<()> {
    let problem = if name.trim().is_empty() {
        "is empty; give the asset a name".to_owned()
    } else if name.len() > MAX_ASSET_NAME_BYTES {
        format!(
            "is {} bytes long; asset names may have at most {MAX_ASSET_NAME_BYTES} bytes",
            name.len()
        )
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        format!("contains the control character {c:?}; use printable characters only")
    } else {
        return Ok(());
    };
    let shown: String = name.chars().take(60).collect();
    let ellipsis = if shown.len() < name.len() { "..." } else { "" };
    Err(Error::invalid_graph(format!(
        "asset name {shown:?}{ellipsis} {problem}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn concurrency_refuses_zero_and_clamps_huge_values() {
        let err = concurrency("max_concurrency", 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions);
        assert!(err.to_string().contains("max_concurrency"), "{err}");
        assert_eq!(concurrency("x", 8).unwrap(), 8);
        assert_eq!(concurrency("x", usize::MAX).unwrap(), MAX_CONCURRENCY);
    }

    #[test]
    fn timeout_refuses_zero() {
        let err = timeout("timeout", Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions);
        assert!(err.to_string().contains("timeout"), "{err}");
        assert!(timeout("timeout", Duration::from_millis(1)).is_ok());
    }

    #[test]
    fn asset_names_are_bounded_and_printable() {
        assert!(asset_name("daily_report").is_ok());
        assert!(asset_name(&"a".repeat(MAX_ASSET_NAME_BYTES)).is_ok());
        for bad in [
            String::new(),
            "  ".into(),
            "a".repeat(MAX_ASSET_NAME_BYTES + 1),
            "é".repeat(200),
            "a\nb".into(),
            "a\0b".into(),
        ] {
            let err = asset_name(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{bad:?}");
        }
    }
}
