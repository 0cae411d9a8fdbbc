//! Identifiers: time-ordered UUIDv7 newtypes, so ids sort by creation and print plainly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(input: &str) -> Result<Self, Error> {
                Uuid::parse_str(input.trim()).map($name).map_err(|_| {
                    Error::invalid_options(format!(
                        concat!("'{}' is not a valid ", $what, " (expected a UUID like 0190f1c2-...)"),
                        input
                    ))
                })
            }
        }
    };
}

uuid_id!(
    /// Identifies one job: one request to materialize an asset for a partition.
    JobId,
    "job id"
);
uuid_id!(
    /// Identifies one run: the materializations started together by one call.
    RunId,
    "run id"
);
uuid_id!(
    /// Identifies one backfill.
    BackfillId,
    "backfill id"
);
