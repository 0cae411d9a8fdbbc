//! Asset selections: which assets a multi-asset backfill (or a schedule) targets, written
//! the same way in code and on the command line.
//!
//! ```text
//! raw_weather                     one asset
//! raw_weather+                    it and everything downstream of it
//! +yearly_report                  it and everything upstream of it
//! +monthly_stats+                 both directions
//! tag:team=weather                every asset tagged team=weather
//! raw_weather+,tag:tier=gold      a comma list: the union
//! ```
//!
//! Parsing checks the syntax ([`AssetSelection::parse`]); resolving against a registry
//! ([`AssetSelection::resolve`]) checks the names (an unknown one is `AssetNotFound` with the
//! nearest registered name) and returns the assets in topological order.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Asset {
        name: String,
        upstream: bool,
        downstream: bool,
    },
    Tag {
        key: String,
        value: String,
    },
}

/// A parsed selection. See the [module docs](self) for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSelection {
    text: String,
    terms: Vec<Term>,
}

impl AssetSelection {
    /// Parses `text`; a malformed term is an `InvalidOptions` error naming it.
    pub fn parse(text: &str) -> Result<AssetSelection> {
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let term = raw.trim();
            if term.is_empty() {
                return Err(Error::invalid_options(format!(
                    "asset selection '{text}' has an empty term; write names, name+, +name or \
                     tag:key=value separated by commas"
                )));
            }
            if let Some(tag) = term.strip_prefix("tag:") {
                let (key, value) = tag.split_once('=').ok_or_else(|| {
                    Error::invalid_options(format!(
                        "asset selection term '{term}' is not tag:key=value"
                    ))
                })?;
                if key.trim().is_empty() {
                    return Err(Error::invalid_options(format!(
                        "asset selection term '{term}' has an empty tag key"
                    )));
                }
                terms.push(Term::Tag {
                    key: key.trim().to_owned(),
                    value: value.trim().to_owned(),
                });
                continue;
            }
            let (upstream, rest) = match term.strip_prefix('+') {
                Some(rest) => (true, rest),
                None => (false, term),
            };
            let (downstream, name) = match rest.strip_suffix('+') {
                Some(name) => (true, name),
                None => (false, rest),
            };
            if name.is_empty() || name.contains('+') {
                return Err(Error::invalid_options(format!(
                    "asset selection term '{term}' is not an asset name, name+, +name or +name+"
                )));
            }
            terms.push(Term::Asset {
                name: name.to_owned(),
                upstream,
                downstream,
            });
        }
        Ok(AssetSelection {
            text: text.trim().to_owned(),
            terms,
        })
    }

    /// A selection of exactly these assets.
    pub fn names<I, S>(names: I) -> AssetSelection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let terms: Vec<Term> = names
            .into_iter()
            .map(|name| Term::Asset {
                name: name.into(),
                upstream: false,
                downstream: false,
            })
            .collect();
        let text = terms
            .iter()
            .filter_map(|t| match t {
                Term::Asset { name, .. } => Some(name.as_str()),
                Term::Tag { .. } => None,
            })
            .collect::<Vec<_>>()
            .join(",");
        AssetSelection { text, terms }
    }

    /// The asset a backfill's partitions are given in when it names none: the first asset the
    /// selection names (`yearly_report` in `+yearly_report`), else the first selected one.
    pub fn anchor(&self, selected: &[String]) -> Option<String> {
        self.terms
            .iter()
            .find_map(|t| match t {
                Term::Asset { name, .. } => Some(name.clone()),
                Term::Tag { .. } => None,
            })
            .or_else(|| selected.first().cloned())
    }

    /// The selection as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The selected assets, in topological order. An unknown name is `AssetNotFound` (with a
    /// near name); a selection that selects nothing is `InvalidOptions`.
    pub fn resolve(&self, registry: &Registry) -> Result<Vec<String>> {
        let mut chosen: BTreeSet<String> = BTreeSet::new();
        for term in &self.terms {
            match term {
                Term::Asset {
                    name,
                    upstream,
                    downstream,
                } => {
                    registry.get(name)?;
                    chosen.insert(name.clone());
                    if *upstream {
                        chosen.extend(registry.ancestors(name)?);
                    }
                    if *downstream {
                        chosen.extend(registry.descendants(name)?);
                    }
                }
                Term::Tag { key, value } => {
                    let mut any = false;
                    for asset in registry.assets() {
                        if asset.tags().get(key) == Some(value) {
                            any = true;
                            chosen.insert(asset.name().to_owned());
                        }
                    }
                    if !any {
                        return Err(Error::invalid_options(format!(
                            "asset selection term 'tag:{key}={value}' selects no asset: none is \
                             tagged {key}={value}"
                        )));
                    }
                }
            }
        }
        Ok(registry
            .topological_order()
            .iter()
            .filter(|name| chosen.contains(*name))
            .cloned()
            .collect())
    }
}

impl fmt::Display for AssetSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for AssetSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        AssetSelection::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let selection = AssetSelection::parse("a, b+ ,+c,+d+,tag:team=x").unwrap();
        assert_eq!(selection.terms.len(), 5);
        assert_eq!(
            selection.terms[1],
            Term::Asset {
                name: "b".into(),
                upstream: false,
                downstream: true
            }
        );
        assert_eq!(
            selection.terms[4],
            Term::Tag {
                key: "team".into(),
                value: "x".into()
            }
        );
    }

    #[test]
    fn malformed_terms_are_named() {
        for (text, named) in [
            ("a,,b", "empty term"),
            ("tag:team", "'tag:team'"),
            ("tag:=x", "empty tag key"),
            ("+", "'+'"),
            ("a++", "'a++'"),
        ] {
            let err = AssetSelection::parse(text).unwrap_err();
            assert!(err.to_string().contains(named), "{text}: {err}");
        }
    }
}
