//! Database URLs as messages and logs may show them: the password of the user info and any
//! `password=` query parameter replaced by `***`. The queue's errors, its test harness and the
//! command line all mask through this module, so a URL is never hidden one way in one message
//! and another way (or not at all) in the next.

use std::ops::Range;

/// `url` with any password replaced by `***`, for messages and logs:
/// `postgres://app:s3cret@db/x` → `postgres://app:***@db/x`, and
/// `postgres://db/x?password=s3cret` → `postgres://db/x?password=***`.
pub fn redact_url(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(password) = password_span(url) {
        shown.replace_range(password, "***");
    }
    redact_query(&shown)
}

/// `text` with every occurrence of `url` replaced by its [`redact_url`] form, and every other
/// occurrence of the URL's password by `***` (a driver's message may quote the password alone).
/// Passwords shorter than three characters are only masked inside the URL: masking them
/// everywhere would garble ordinary words.
pub fn redact_url_in(text: &str, url: &str) -> String {
    let shown = redact_url(url);
    if shown == url {
        return text.to_owned();
    }
    let mut out = text.replace(url, &shown);
    if let Some(password) = password_span(url).map(|span| &url[span])
        && password.len() >= 3
    {
        out = out.replace(password, "***");
    }
    out
}

/// Where the password of `url`'s user info is (`scheme://user:PASSWORD@host/...`). The user
/// info ends at the authority's last `@`, so a password holding an unescaped `@` is still
/// covered whole.
fn password_span(url: &str) -> Option<Range<usize>> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let colon = userinfo.find(':')?;
    Some(authority_start + colon + 1..authority_start + userinfo.len())
}

fn redact_query(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://bob:secret@db:5432/x?sslmode=disable"),
            "postgres://bob:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db/x?password=secret&user=bob"),
            "postgres://db/x?password=***&user=bob"
        );
        assert_eq!(redact_url("sqlite://a/b.db"), "sqlite://a/b.db");
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
    }

    #[test]
    fn passwords_are_hidden_in_every_form_the_cli_accepts() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://app@db/x?password=hunter2&sslmode=require"),
            "postgres://app@db/x?password=***&sslmode=require"
        );
        assert_eq!(redact_url("sqlite://flowstone.db"), "sqlite://flowstone.db");
        assert_eq!(redact_url("mysql://u:p@w@h/d"), "mysql://u:***@h/d");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn urls_and_passwords_are_hidden_in_messages() {
        let url = "postgres://app:s3cret@db/x";
        assert_eq!(
            redact_url_in(&format!("cannot reach {url}: password s3cret refused"), url),
            "cannot reach postgres://app:***@db/x: password *** refused"
        );
        assert_eq!(
            redact_url_in("no password in sqlite://a.db", "sqlite://a.db"),
            "no password in sqlite://a.db"
        );
    }
}
