//! The access token and CSRF protection.
//!
//! - Access: with a token configured, every request but the login form and the static files
//!   must carry it, as `Authorization: Bearer TOKEN` (scripts, Prometheus) or the cookie
//!   `flowstone_ui_token` that `POST /login` sets (people). Without one, GET pages answer 401
//!   with the login form, and everything else a bare 401.
//! - Actions: every POST carries the server's CSRF token in its form (field `csrf`), checked by
//!   the [`Action`] extractor before the handler runs. The token is random per server; a page of
//!   another origin cannot read it, so it cannot forge an action.

use std::collections::HashMap;

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::UiError;
use crate::html;
use crate::state::AppState;

/// The cookie the login form sets.
pub const TOKEN_COOKIE: &str = "flowstone_ui_token";

/// 256 random bits as hex (two v4 UUIDs: 244 random bits), for the CSRF token.
pub(crate) fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares without stopping at the first difference, so timing does not leak a prefix.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request carries, from its bearer header or its cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
    })
}

/// Middleware: lets a request through when no token is configured, when it carries the token,
/// or when it asks for the login form or a static file.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.inner.token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/static/") {
        return next.run(request).await;
    }
    if presented(request.headers()).is_some_and(|p| same(p, token)) {
        return next.run(request).await;
    }
    if request.method() == Method::GET {
        let mut page = login_form(&state, "This dashboard needs its access token.").into_response();
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        page
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "this dashboard needs its access token",
        )
            .into_response()
    }
}

fn login_form(state: &AppState, note: &str) -> axum::response::Html<String> {
    let body = format!(
        "<h1>Sign in</h1><p>{}</p><form method=\"post\" action=\"/login\" id=\"login\">{}\
         <label>Access token <input type=\"password\" name=\"token\" id=\"token\" autofocus></label>\
         <button type=\"submit\">Sign in</button></form>",
        html::esc(note),
        html::csrf_field(state.csrf())
    );
    html::page("Sign in", "", &body)
}

/// `GET /login`.
pub(crate) async fn login_page(State(state): State<AppState>) -> Response {
    login_form(&state, "Enter the token the server was started with.").into_response()
}

/// `POST /login`: the right token sets the cookie and goes to the overview.
pub(crate) async fn login(State(state): State<AppState>, action: Action) -> Response {
    let Some(token) = state.inner.token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    if !action.field("token").is_some_and(|t| same(t, token)) {
        let mut page = login_form(&state, "That token is not right.").into_response();
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    }
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// A POSTed form whose CSRF token was checked: handlers that change anything take this.
#[derive(Debug)]
pub struct Action {
    fields: HashMap<String, String>,
}

impl Action {
    /// A field of the form, trimmed; `None` when absent or blank.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

impl FromRequest<AppState> for Action {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let Form(fields): Form<HashMap<String, String>> = Form::from_request(request, state)
            .await
            .map_err(|e| UiError::bad_request(format!("could not read the form: {e}")))?;
        match fields.get("csrf") {
            Some(token) if same(token, state.csrf()) => Ok(Action { fields }),
            Some(_) => Err(UiError::forbidden(
                "the form's CSRF token is not this server's: reload the page and try again",
            )),
            None => Err(UiError::forbidden(
                "the form has no CSRF token: actions must come from the dashboard's own pages",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_then_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; flowstone_ui_token=xyz".parse().unwrap(),
        );
        assert_eq!(presented(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h), Some("abc"));
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_eq!(new_secret().len(), 64);
    }
}
