//! Where FlowStone keeps its records and outputs, from the global options: one function,
//! [`configure_storage`], and the URL validation it needs. Passwords are masked by the queue's
//! [`redact_url`], the one masking every FlowStone message uses.

use flowstone::FileIo;
use flowstone::api::Builder;
use flowstone_queue::redact_url;

use crate::{CliError, GlobalOpts};

/// The database used when neither `--database` nor `FLOWSTONE_DATABASE_URL` is given: an
/// embedded SQLite file in the current folder.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://flowstone.db";

/// The database engines a URL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// Checks the form of a database URL, before connecting, and says which engine it names. The
/// error names the URL with its password masked.
pub(crate) fn engine_of(url: &str) -> Result<Engine, CliError> {
    let lower = url.trim().to_ascii_lowercase();
    let expected = "expected sqlite://PATH (e.g. sqlite://flowstone.db) or \
                    postgres://USER:PASSWORD@HOST:PORT/DATABASE";
    if let Some(rest) = lower.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        if path.is_empty() {
            return Err(CliError::usage(format!(
                "database URL '{}' names no SQLite file; {expected}",
                redact_url(url)
            )));
        }
        return Ok(Engine::Sqlite);
    }
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(CliError::usage(format!(
                    "database URL '{}' names no PostgreSQL host; {expected}",
                    redact_url(url)
                )));
            }
            return Ok(Engine::Postgres);
        }
    }
    Err(CliError::usage(format!(
        "unsupported database URL '{}'; {expected}",
        redact_url(url)
    )))
}

/// Configures `builder`'s storage from the global options: asset outputs as files under
/// `--data-dir` (the default IO manager; the database's blob IO stays registered as `sql`), and
/// materialization records, lineage and the durable queue in the database named by
/// `--database`. Finish with `connect().await` (see [`crate::prepare`]).
pub fn configure_storage(builder: Builder, globals: &GlobalOpts) -> Result<Builder, CliError> {
    engine_of(&globals.database)?;
    Ok(builder
        .io_manager(FileIo::new(&globals.data_dir))
        .database(globals.database.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_url_forms() {
        assert_eq!(engine_of("sqlite://flowstone.db").unwrap(), Engine::Sqlite);
        assert_eq!(engine_of("sqlite::memory:").unwrap(), Engine::Sqlite);
        assert_eq!(
            engine_of("postgres://u:p@localhost/db").unwrap(),
            Engine::Postgres
        );
        let err = engine_of("mysql://root:hunter2@db/x").unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().contains("mysql://root:***@db/x"));
        assert!(!err.message().contains("hunter2"));
        assert!(engine_of("sqlite://").is_err());
    }
}
