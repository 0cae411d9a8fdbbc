//! Errors as pages: what went wrong, naming the input, with the right status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowstone::ErrorKind;

use crate::html;

/// An error a handler answers with: a status and a message for the person.
#[derive(Debug, Clone)]
pub struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    /// 404: the URL names something that does not exist or cannot be parsed.
    pub fn not_found(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 400: a form's field is missing or malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 403: an action without the right CSRF token.
    pub fn forbidden(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// 409: the action does not apply any more (the job or backfill has finished).
    pub fn conflict(message: impl Into<String>) -> Self {
        UiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<flowstone::Error> for UiError {
    fn from(err: flowstone::Error) -> Self {
        let status = match err.kind() {
            ErrorKind::AssetNotFound | ErrorKind::NotFound | ErrorKind::InvalidPartition => {
                StatusCode::NOT_FOUND
            }
            ErrorKind::AlreadyFinished => StatusCode::CONFLICT,
            ErrorKind::InvalidOptions | ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        UiError {
            status,
            message: err.to_string(),
        }
    }
}

impl From<flowstone_queue::Error> for UiError {
    fn from(err: flowstone_queue::Error) -> Self {
        match err {
            flowstone_queue::Error::NotFound(id) => UiError::not_found(format!("no job {id}")),
            flowstone_queue::Error::AlreadyFinished { id, state } => UiError::conflict(format!(
                "job {id} has already finished ({})",
                state.as_str()
            )),
            other => UiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the queue failed: {other}"),
            },
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::CONFLICT => "Nothing to do",
            StatusCode::UNAUTHORIZED => "Sign in",
            _ => "Error",
        };
        let body = format!(
            "<h1>{}</h1><p class=\"error-text\" id=\"error-message\">{}</p><p><a href=\"/\">Back to the overview</a></p>",
            html::esc(title),
            html::esc(&self.message)
        );
        (self.status, html::page(title, "", &body)).into_response()
    }
}

/// The result of a handler.
pub(crate) type UiResult<T> = Result<T, UiError>;
