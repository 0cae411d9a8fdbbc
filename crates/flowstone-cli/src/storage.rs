//! Where FlowStone keeps its records and outputs, from the global options: one function,
//! [`configure_storage`], and the URL handling it needs (validation, password masking).

use flowstone::FileIo;
use flowstone::api::Builder;

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
                mask_password(url)
            )));
        }
        return Ok(Engine::Sqlite);
    }
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(CliError::usage(format!(
                    "database URL '{}' names no PostgreSQL host; {expected}",
                    mask_password(url)
                )));
            }
            return Ok(Engine::Postgres);
        }
    }
    Err(CliError::usage(format!(
        "unsupported database URL '{}'; {expected}",
        mask_password(url)
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

/// `url` with the password of its user info (and any `password=` query parameter) replaced by
/// `***`: `postgres://app:s3cret@db/x` → `postgres://app:***@db/x`.
pub fn mask_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo_end = authority_start + at;
            if let Some(colon) = out[authority_start..userinfo_end].find(':') {
                out.replace_range(authority_start + colon + 1..userinfo_end, "***");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

/// `text` with every occurrence of `url` replaced by its masked form, and of its password by
/// `***`, so no message printed by the CLI shows a database password.
pub(crate) fn redact(text: &str, url: &str) -> String {
    let masked = mask_password(url);
    if masked == url {
        return text.to_owned();
    }
    let mut out = text.replace(url, &masked);
    if let Some(password) = password_of(url)
        && password.len() >= 3
    {
        out = out.replace(password, "***");
    }
    out
}

fn password_of(url: &str) -> Option<&str> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            mask_password("postgres://app@db/x?password=hunter2&sslmode=require"),
            "postgres://app@db/x?password=***&sslmode=require"
        );
        assert_eq!(
            mask_password("sqlite://flowstone.db"),
            "sqlite://flowstone.db"
        );
        assert_eq!(mask_password("mysql://u:p@w@h/d"), "mysql://u:***@h/d");
    }

    #[test]
    fn redacts_urls_and_passwords_in_messages() {
        let url = "postgres://app:s3cret@db/x";
        assert_eq!(
            redact(&format!("cannot reach {url}: password s3cret refused"), url),
            "cannot reach postgres://app:***@db/x: password *** refused"
        );
    }

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
