//! What a command ends with: a [`Status`] when it ran, a [`CliError`] when it could not, and the
//! exit codes both map to.

use std::process::ExitCode;

use flowstone::ErrorKind;
use flowstone_queue::redact_url_in;

use crate::GlobalOpts;
use crate::output::partition_text;

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything worked (exit 0).
    Ok,
    /// Some of the work failed or was cancelled (exit 1).
    WorkFailed,
}

impl Status {
    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Status::Ok => ExitCode::SUCCESS,
            Status::WorkFailed => ExitCode::from(1),
        }
    }
}

/// A command that could not do its work: a message for people, an exit code for scripts.
#[derive(Debug, Clone)]
pub struct CliError {
    code: u8,
    kind: &'static str,
    message: String,
    hint: Option<String>,
}

impl CliError {
    /// A usage error: bad input or options (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            kind: "usage",
            message: message.into(),
            hint: None,
        }
    }

    /// Work that failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            kind: "failed",
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a line telling the person what to do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit code: 1 for failed work, 2 for usage errors.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prints the error (on stderr; also as JSON on stdout with `--json`), with any password
    /// of the database URL masked, and returns the exit code.
    pub fn report(&self, globals: &GlobalOpts) -> ExitCode {
        let message = redact_url_in(&self.message, &globals.database);
        let hint = self
            .hint
            .as_deref()
            .map(|h| redact_url_in(h, &globals.database));
        eprintln!("error: {message}");
        if let Some(hint) = &hint {
            eprintln!("hint: {hint}");
        }
        if globals.json {
            let doc = serde_json::json!({
                "error": { "kind": self.kind, "message": message, "hint": hint },
                "exit_code": self.code,
            });
            println!("{doc}");
        }
        ExitCode::from(self.code)
    }
}

/// The exit code for a FlowStone error of `kind`: 2 when the input or configuration was wrong,
/// 1 when the work failed.
pub fn exit_code_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::AssetNotFound
        | ErrorKind::InvalidPartition
        | ErrorKind::InvalidOptions
        | ErrorKind::Unsupported
        | ErrorKind::InvalidGraph
        | ErrorKind::Config
        | ErrorKind::NotFound
        | ErrorKind::AlreadyFinished => 2,
        _ => 1,
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::AssetNotFound => "asset_not_found",
        ErrorKind::DependencyNotReady => "dependency_not_ready",
        ErrorKind::ExecutionFailed => "execution_failed",
        ErrorKind::Panicked => "panicked",
        ErrorKind::ExecutionTimeout => "execution_timeout",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::InvalidPartition => "invalid_partition",
        ErrorKind::InvalidOptions => "invalid_options",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::InvalidGraph => "invalid_graph",
        ErrorKind::Resource => "resource",
        ErrorKind::Io => "io",
        ErrorKind::Store => "store",
        ErrorKind::Queue => "queue",
        ErrorKind::Config => "config",
        ErrorKind::NotFound => "not_found",
        ErrorKind::AlreadyFinished => "already_finished",
        ErrorKind::UpstreamFailed => "upstream_failed",
        _ => "error",
    }
}

impl From<flowstone::Error> for CliError {
    fn from(err: flowstone::Error) -> Self {
        let hint = match err.kind() {
            ErrorKind::DependencyNotReady => Some(String::from(
                "materialize the dependencies first, or pass --with-upstream",
            )),
            _ => None,
        };
        // The partition as people type it.
        let message = err.describe(partition_text);
        CliError {
            code: exit_code_for(err.kind()),
            kind: kind_name(err.kind()),
            message,
            hint,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
