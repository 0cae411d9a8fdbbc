//! A fixed list of string partitions (regions, tenants known up front).

use std::collections::HashSet;
use std::sync::Arc;

use super::{Partition, PartitionsDefinition};
use crate::error::{Error, Result};

/// How many allowed values an error message lists before summarizing the rest.
const LISTED: usize = 10;

/// A fixed, ordered list of [`Partition::Str`] values.
///
/// ```
/// use flowstone::partition::{Partition, PartitionsDefinition, StaticPartitions};
///
/// let regions = StaticPartitions::new(["us", "eu", "apac"]);
/// assert_eq!(regions.parse("eu")?, Partition::from("eu"));
/// let err = regions.parse("mars").unwrap_err();
/// assert!(err.to_string().contains("one of: us, eu, apac"));
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// Duplicate values are a mistake; they are reported (as `InvalidOptions`) by `partitions()`
/// and `parse()`. `parse` accepts a value as it is, trimmed, or in its canonical encoding
/// (`s:a:b` for the value `a:b`).
#[derive(Debug, Clone)]
pub struct StaticPartitions {
    values: Arc<[String]>,
    duplicate: Option<String>,
}

impl StaticPartitions {
    /// The partitions `values`, in this order.
    pub fn new<I, S>(values: I) -> StaticPartitions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let mut seen = HashSet::new();
        let duplicate = values
            .iter()
            .find(|value| !seen.insert(value.as_str()))
            .cloned();
        StaticPartitions {
            values: values.into(),
            duplicate,
        }
    }

    /// The values, in order.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn check(&self) -> Result<()> {
        match &self.duplicate {
            Some(value) => Err(Error::invalid_options(format!(
                "StaticPartitions lists '{value}' more than once; each value must be unique"
            ))),
            None => Ok(()),
        }
    }

    fn find(&self, candidate: &str) -> Option<&String> {
        self.values.iter().find(|value| value.as_str() == candidate)
    }
}

impl PartitionsDefinition for StaticPartitions {
    fn partitions(&self) -> Result<Vec<Partition>> {
        self.check()?;
        Ok(self.values.iter().cloned().map(Partition::Str).collect())
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        self.check()?;
        let decoded = Partition::decode(input).ok();
        let decoded = decoded.as_ref().and_then(|p| p.str().ok());
        [Some(input), Some(input.trim()), decoded]
            .into_iter()
            .flatten()
            .find_map(|candidate| self.find(candidate))
            .map(|value| Partition::Str(value.clone()))
            .ok_or_else(|| Error::invalid_partition(input, self.expected_form()))
    }

    fn expected_form(&self) -> String {
        if self.values.is_empty() {
            return String::from("nothing: this StaticPartitions has no values");
        }
        let listed: Vec<&str> = self
            .values
            .iter()
            .take(LISTED)
            .map(String::as_str)
            .collect();
        let more = self.values.len().saturating_sub(LISTED);
        if more > 0 {
            format!("one of: {}, ... ({more} more)", listed.join(", "))
        } else {
            format!("one of: {}", listed.join(", "))
        }
    }

    fn contains_is_cheap(&self) -> bool {
        true
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        self.check()?;
        Ok(match partition {
            Partition::Str(s) => self.find(s).is_some(),
            _ => false,
        })
    }
}
