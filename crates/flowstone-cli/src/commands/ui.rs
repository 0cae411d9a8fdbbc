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
