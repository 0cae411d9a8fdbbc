//! How much a commit that returned Ok survives: [`Durability`], chosen per database handle
//! in [`ConnectOptions`](crate::ConnectOptions) or by the URL parameter `durability=`, which
//! is taken out of the URL here before the driver sees it.
//!
//! The default is [`Durability::Full`]: an insert or ack that returned Ok survives power
//! loss. [`Durability::Relaxed`] trades the last moments of commits before a power loss (or a
//! PostgreSQL server crash) for speed; it never corrupts the database and never loses a
//! commit to a mere process crash.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How durable the commits of a [`Database`](crate::Database) handle are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit that returned Ok survives power loss. SQLite: `synchronous = FULL` (WAL).
    /// PostgreSQL: inserts and acks wait for the WAL flush (the server's
    /// `synchronous_commit`); claims stay leases unless `WorkerSettings::durable_claims`.
    #[default]
    Full,
    /// Faster commits that power loss can undo. SQLite: `synchronous = NORMAL` (WAL): a
    /// process crash loses nothing, a power loss or OS crash may lose the last commits.
    /// PostgreSQL: `synchronous_commit = off` for the whole pool: a crash of the database
    /// server may lose roughly the last 0.6 s of commits (inserts that returned Ok, acks, so
    /// finished jobs may run again); a crash of a client loses nothing.
    Relaxed,
}

impl Durability {
    /// `full` or `relaxed`, as in the URL parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Relaxed => "relaxed",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Durability::Full),
            "relaxed" => Ok(Durability::Relaxed),
            _ => Err(format!(
                "unknown durability `{s}`: use `full` (the default: commits survive power \
                 loss) or `relaxed` (faster; power loss may undo the last commits)"
            )),
        }
    }
}

/// The URL without its `durability=` parameter, and that parameter's value if it had one.
/// `shown` (the URL with its password hidden) names the URL in the error for a bad value.
pub(crate) fn take_from_url(url: &str, shown: &str) -> Result<(String, Option<Durability>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut found = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("durability") => {
                let parsed = value.parse().map_err(|reason| Error::BadUrl {
                    url: shown.to_owned(),
                    reason,
                })?;
                found = Some(parsed);
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_is_taken_out_and_the_rest_kept() {
        let cases = [
            ("sqlite://a.db", "sqlite://a.db", None),
            (
                "sqlite://a.db?durability=relaxed",
                "sqlite://a.db",
                Some(Durability::Relaxed),
            ),
            (
                "postgres://u@h/db?sslmode=disable&Durability=FULL&application_name=x",
                "postgres://u@h/db?sslmode=disable&application_name=x",
                Some(Durability::Full),
            ),
        ];
        for (url, rest, durability) in cases {
            assert_eq!(
                take_from_url(url, url).unwrap(),
                (rest.to_owned(), durability),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bad_value_names_the_url_and_the_choices() {
        let err = take_from_url("sqlite://a.db?durability=fast", "sqlite://a.db?…").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`fast`"), "{message}");
        assert!(message.contains("`full`") && message.contains("`relaxed`"));
        assert!(message.contains("sqlite://a.db?…"), "{message}");
    }
}
