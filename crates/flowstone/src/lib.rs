//! FlowStone: asset-first data orchestration.

pub mod error;
pub mod partition;

pub use error::{Error, ErrorKind, ErrorRecord, Result};
pub use partition::{Partition, PartitionsDefinition};
