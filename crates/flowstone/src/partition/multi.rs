//! Several dimensions at once: every combination of a day and a region, say.

use std::sync::Arc;

use super::bounds::check_expansion;
use super::{Partition, PartitionsDefinition};
use crate::error::{Error, Result};

/// The cartesian product of named dimensions, as [`Partition::Tuple`] values with one element
/// per dimension, in the order the dimensions were added (the first one varies slowest).
///
/// ```
/// use flowstone::partition::{Daily, MultiPartitions, Partition, PartitionsDefinition, StaticPartitions};
///
/// let parts = MultiPartitions::new()
///     .dimension("date", Daily::from("2024-01-01").to("2024-01-07"))
///     .dimension("region", StaticPartitions::new(["us", "eu"]));
/// assert_eq!(parts.partitions()?.len(), 14);
/// let p = parts.parse("2024-01-05|eu")?;
/// assert_eq!(p, Partition::Tuple(vec![Partition::ymd(2024, 1, 5)?, Partition::from("eu")]));
/// assert_eq!(parts.parse("2024-01-05,eu")?, p);
/// assert_eq!(parts.parse(&p.encode())?, p);
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// `parse` splits a person's input on `|` (or, failing that, on `,`) and hands each part to
/// its dimension; it also accepts the canonical tuple encoding. Errors name the dimension that
/// rejected its part. No dimensions, an empty or repeated dimension name are reported (as
/// `InvalidOptions`) by `partitions()` and `parse()`.
#[derive(Debug, Clone, Default)]
pub struct MultiPartitions {
    dimensions: Vec<(String, Arc<dyn PartitionsDefinition>)>,
}

impl MultiPartitions {
    /// No dimensions yet; add them with [`MultiPartitions::dimension`].
    pub fn new() -> Self {
        MultiPartitions::default()
    }

    /// Adds the dimension `name` whose values are `definition`'s. An `Arc<dyn
    /// PartitionsDefinition>` is a definition too, so shared definitions can be passed.
    pub fn dimension(
        mut self,
        name: impl Into<String>,
        definition: impl PartitionsDefinition,
    ) -> Self {
        self.dimensions.push((name.into(), Arc::new(definition)));
        self
    }

    /// The dimension names, in order.
    pub fn dimension_names(&self) -> impl Iterator<Item = &str> {
        self.dimensions.iter().map(|(name, _)| name.as_str())
    }

    /// The definition of the dimension `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PartitionsDefinition>> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, definition)| definition)
    }

    fn check(&self) -> Result<()> {
        if self.dimensions.is_empty() {
            return Err(Error::invalid_options(
                "MultiPartitions has no dimensions; add them with .dimension(name, definition)",
            ));
        }
        for (i, (name, _)) in self.dimensions.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::invalid_options(format!(
                    "MultiPartitions dimension {} has an empty name",
                    i + 1
                )));
            }
            if self.dimensions[..i].iter().any(|(other, _)| other == name) {
                return Err(Error::invalid_options(format!(
                    "MultiPartitions has the dimension '{name}' more than once"
                )));
            }
        }
        Ok(())
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.dimension_names().collect();
        names.join("|")
    }

    /// Each part parsed by its dimension; `None` when the count does not match.
    fn parse_parts<'a>(
        &self,
        input: &str,
        parts: impl Iterator<Item = &'a str>,
    ) -> Option<Result<Partition>> {
        let parts: Vec<&str> = parts.collect();
        if parts.len() != self.dimensions.len() {
            return None;
        }
        let items = parts
            .iter()
            .zip(&self.dimensions)
            .map(|(part, (name, definition))| {
                definition
                    .parse(part.trim())
                    .map_err(|err| self.dimension_error(input, name, err))
            })
            .collect::<Result<Vec<_>>>();
        Some(items.map(Partition::Tuple))
    }

    /// A canonical tuple encoding, checked element by element.
    fn parse_encoded(&self, input: &str) -> Result<Partition> {
        let decoded = Partition::decode(input)?;
        let items = decoded.tuple()?;
        if items.len() != self.dimensions.len() {
            return Err(Error::invalid_partition(input, self.expected_form()));
        }
        for (item, (name, definition)) in items.iter().zip(&self.dimensions) {
            if !definition
                .contains(item)
                .map_err(|err| self.dimension_error(input, name, err))?
            {
                return Err(self.dimension_error(
                    input,
                    name,
                    Error::invalid_partition(&item.encode(), definition.expected_form()),
                ));
            }
        }
        Ok(decoded)
    }

    fn dimension_error(&self, input: &str, name: &str, err: Error) -> Error {
        Error::invalid_partition(
            input,
            format!(
                "{}; dimension '{name}' rejected its part: {}",
                self.expected_form(),
                err.message()
            ),
        )
    }
}

impl PartitionsDefinition for MultiPartitions {
    fn partitions(&self) -> Result<Vec<Partition>> {
        self.check()?;
        let mut per_dimension = Vec::with_capacity(self.dimensions.len());
        let mut count: i128 = 1;
        for (name, definition) in &self.dimensions {
            let values = definition
                .partitions()
                .map_err(|err| Error::new(err.kind(), format!("dimension '{name}': {err}")))?;
            count = count.saturating_mul(values.len() as i128);
            check_expansion(&format!("MultiPartitions ({})", self.names()), count)?;
            per_dimension.push(values);
        }
        let mut product: Vec<Vec<Partition>> = vec![Vec::new()];
        for values in &per_dimension {
            let mut next = Vec::with_capacity(product.len() * values.len());
            for prefix in &product {
                for value in values {
                    let mut combination = Vec::with_capacity(per_dimension.len());
                    combination.extend_from_slice(prefix);
                    combination.push(value.clone());
                    next.push(combination);
                }
            }
            product = next;
        }
        Ok(product.into_iter().map(Partition::Tuple).collect())
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        self.check()?;
        if input.starts_with("t:") {
            return self.parse_encoded(input);
        }
        self.parse_parts(input, input.split('|'))
            .or_else(|| self.parse_parts(input, input.split(',')))
            .unwrap_or_else(|| Err(Error::invalid_partition(input, self.expected_form())))
    }

    fn expected_form(&self) -> String {
        let forms: Vec<String> = self
            .dimensions
            .iter()
            .map(|(name, definition)| format!("{name} is {}", definition.expected_form()))
            .collect();
        format!(
            "{} values separated by '|' ({}) where {}",
            self.dimensions.len(),
            self.names(),
            forms.join("; and ")
        )
    }

    fn contains_is_cheap(&self) -> bool {
        self.dimensions.iter().all(|(_, d)| d.contains_is_cheap())
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        self.check()?;
        let Partition::Tuple(items) = partition else {
            return Ok(false);
        };
        if items.len() != self.dimensions.len() {
            return Ok(false);
        }
        for (item, (_, definition)) in items.iter().zip(&self.dimensions) {
            if !definition.contains(item)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn dimensions(&self) -> Option<&[(String, Arc<dyn PartitionsDefinition>)]> {
        Some(&self.dimensions)
    }
}
