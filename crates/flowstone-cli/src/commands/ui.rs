//! `ui`: serve the web dashboard (crate `flowstone-ui`) on the same database as every other
//! command, until SIGINT or SIGTERM.

use std::net::SocketAddr;

use clap::Args;
use flowstone::FlowStone;

use crate::commands::worker::shutdown_signal;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address to listen on; anything but loopback needs --token
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Access token every request must carry (bearer header, or the login form's cookie)
    #[arg(
        long,
        env = "FLOWSTONE_UI_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// Runs `ui`.
pub async fn run(fs: &FlowStone, _globals: &GlobalOpts, args: UiArgs) -> Result<Status, CliError> {
    let token = args.token.filter(|t| !t.is_empty());
    let listener = flowstone_ui::listen(args.bind, token.as_deref())
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    let addr = listener.local_addr().unwrap_or(args.bind);
    let note = if token.is_some() {
        " (token required)"
    } else {
        ""
    };
    eprintln!("dashboard on http://{addr}/{note}: serving until SIGINT (Ctrl-C) or SIGTERM");
    flowstone_ui::serve_on(fs.clone(), listener, token, shutdown_signal())
        .await
        .map_err(|e| CliError::failed(e.to_string()))?;
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    #[test]
    fn ui_binds_loopback_by_default() {
        let cli = Cli::try_parse_from(["demo", "ui"]).unwrap();
        let Command::Ui(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.bind.to_string(), "127.0.0.1:3000");
        assert!(Cli::try_parse_from(["demo", "ui", "--bind", "nowhere"]).is_err());
    }

    #[test]
    fn worker_takes_a_metrics_address() {
        let cli =
            Cli::try_parse_from(["demo", "worker", "--metrics-bind", "127.0.0.1:9100"]).unwrap();
        let Command::Worker(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.metrics_bind.unwrap().to_string(), "127.0.0.1:9100");
    }

    #[tokio::test]
    async fn ui_refuses_a_public_address_without_a_token() {
        let dir = std::env::temp_dir().join(format!("flowstone-cli-ui-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = format!("sqlite://{}", dir.join("ui.db").display());
        let builder = flowstone::FlowStone::builder().asset(
            flowstone::Asset::new("n").execute(|_ctx| async { Ok::<_, flowstone::Error>(1u8) }),
        );
        let status = crate::run_with_args(
            builder,
            ["demo", "--database", &database, "ui", "--bind", "0.0.0.0:0"],
        )
        .await;
        assert_eq!(status, std::process::ExitCode::from(2), "a usage error");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
