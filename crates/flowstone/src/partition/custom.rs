//! Partitions listed by a function (tenants from a table, files in a bucket).

use std::fmt;
use std::sync::Arc;

use super::{MAX_PARTITIONS, Partition, PartitionsDefinition};
use crate::error::{Error, Result};

type Lister = dyn Fn() -> Result<Vec<Partition>> + Send + Sync;
type Parser = dyn Fn(&str) -> Result<Partition> + Send + Sync;

/// How many members an error message lists.
const LISTED: usize = 10;

/// Partitions listed by a function, called each time they are needed (so the set may change).
///
/// ```
/// use flowstone::partition::{CustomPartitions, Partition, PartitionsDefinition};
///
/// let shards = CustomPartitions::new(|| Ok((0..4i64).map(Partition::from).collect()));
/// assert_eq!(shards.parse("2")?, Partition::Int(2));
/// assert_eq!(shards.parse("i:3")?, Partition::Int(3));
/// assert!(shards.parse("7").is_err());
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// The default `parse` looks for a member equal to the input decoded
/// ([`Partition::decode`]), then to the input as a plain string, then for the single member
/// whose plain form (`42` for `i:42`, `2024-01-05` for `d:2024-01-05`) is the input. A
/// parser set with [`CustomPartitions::with_parser`] replaces those steps; its result must
/// still be a member. A list longer than [`MAX_PARTITIONS`] is an `InvalidOptions` error.
#[derive(Clone)]
pub struct CustomPartitions {
    list: Arc<Lister>,
    parser: Option<Arc<Parser>>,
    form: Option<String>,
}

impl CustomPartitions {
    /// Partitions listed by `list`.
    pub fn new(list: impl Fn() -> Result<Vec<Partition>> + Send + Sync + 'static) -> Self {
        CustomPartitions {
            list: Arc::new(list),
            parser: None,
            form: None,
        }
    }

    /// Parses a person's input with `parser` instead of the default; the result must be a
    /// member of the set.
    pub fn with_parser(
        mut self,
        parser: impl Fn(&str) -> Result<Partition> + Send + Sync + 'static,
    ) -> Self {
        self.parser = Some(Arc::new(parser));
        self
    }

    /// Describes the accepted input for error messages (`a tenant id like tenant_123`).
    pub fn with_expected_form(mut self, form: impl Into<String>) -> Self {
        self.form = Some(form.into());
        self
    }

    fn default_parse(input: &str, members: &[Partition]) -> Option<Partition> {
        let exact = [
            Partition::decode(input).ok(),
            Some(Partition::Str(input.to_owned())),
        ];
        if let Some(found) = exact.into_iter().flatten().find(|p| members.contains(p)) {
            return Some(found);
        }
        let trimmed = input.trim();
        let mut loose = members
            .iter()
            .filter(|member| plain_form(member).as_deref() == Some(trimmed));
        match (loose.next(), loose.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    fn describe(&self, members: Option<&[Partition]>) -> String {
        if let Some(form) = &self.form {
            return form.clone();
        }
        match members {
            Some([]) => String::from("nothing: the custom partitions list is empty"),
            Some(members) => {
                let listed: Vec<String> =
                    members.iter().take(LISTED).map(Partition::encode).collect();
                let more = members.len().saturating_sub(LISTED);
                if more > 0 {
                    format!("one of: {}, ... ({more} more)", listed.join(", "))
                } else {
                    format!("one of: {}", listed.join(", "))
                }
            }
            None => String::from("a member of the custom partitions"),
        }
    }
}

/// How a person would write a scalar member without its tag.
fn plain_form(p: &Partition) -> Option<String> {
    match p {
        Partition::Int(n) => Some(n.to_string()),
        Partition::Date(d) => Some(d.to_string()),
        Partition::Str(s) => Some(s.clone()),
        Partition::DateTime(_) | Partition::NaiveDateTime(_) => {
            p.encode().split_once(':').map(|(_, rest)| rest.to_owned())
        }
        Partition::Unpartitioned | Partition::Tuple(_) => None,
    }
}

impl PartitionsDefinition for CustomPartitions {
    fn partitions(&self) -> Result<Vec<Partition>> {
        let members = (self.list)()?;
        if members.len() > MAX_PARTITIONS {
            return Err(Error::invalid_options(format!(
                "CustomPartitions listed {} partitions, more than the limit of {MAX_PARTITIONS}",
                members.len()
            )));
        }
        Ok(members)
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        let members = self.partitions()?;
        let parsed = match &self.parser {
            Some(parser) => Some(parser(input)?).filter(|p| members.contains(p)),
            None => Self::default_parse(input, &members),
        };
        parsed.ok_or_else(|| Error::invalid_partition(input, self.describe(Some(&members))))
    }

    fn expected_form(&self) -> String {
        let members = self.partitions().ok();
        self.describe(members.as_deref())
    }
}

impl fmt::Debug for CustomPartitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomPartitions")
            .field("custom_parser", &self.parser.is_some())
            .field("expected_form", &self.form)
            .finish_non_exhaustive()
    }
}
