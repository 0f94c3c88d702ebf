//! `yyctl`: tenants and API keys through the gateway's admin API (`/admin/v1`).
//!
//! Exit codes: 0 on success, 1 when the gateway refuses the request or answers unexpectedly,
//! 2 for a usage error, 69 when the gateway cannot be reached.

mod client;
mod output;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use client::{AdminClient, Failure};

/// Manage Yiwaiwai tenants and API keys through the gateway's admin API.
#[derive(Debug, Parser)]
#[command(name = "yyctl", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The gateway's HTTP URL.
    #[arg(long, env = "YY_API_URL", default_value = "http://127.0.0.1:8080", value_parser = parse_url, global = true)]
    url: Url,
    /// The gateway's admin token (its `auth.admin_token`).
    #[arg(long, env = "YY_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
    /// Print the gateway's JSON answers instead of text for people.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Its display name (1 to 200 characters).
        name: String,
    },
    /// List every tenant, oldest first.
    List,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Issue an API key to a tenant. The key is printed once and cannot be shown again.
    Create {
        /// The tenant (`ten_…`).
        tenant_id: String,
        /// What the key is for, such as "production backend".
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List a tenant's API keys, revoked ones included.
    List {
        /// The tenant (`ten_…`).
        tenant_id: String,
    },
    /// Revoke an API key: requests with it are refused from now on.
    Revoke {
        /// The tenant (`ten_…`).
        tenant_id: String,
        /// The key (`key_…`).
        key_id: String,
    },
}

fn parse_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("use an http:// or https:// URL".into());
    }
    Ok(url)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(token) = cli.global.admin_token.clone().filter(|t| !t.is_empty()) else {
        let mut command = <Cli as clap::CommandFactory>::command();
        command
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "an admin token is required: pass --admin-token or set YY_ADMIN_TOKEN",
            )
            .exit();
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("yyctl: cannot start: {error}");
            return ExitCode::from(71);
        }
    };
    let client = match AdminClient::new(cli.global.url.clone(), token) {
        Ok(client) => client,
        Err(failure) => return report(&failure),
    };
    match runtime.block_on(run(&client, cli.command, cli.global.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

async fn run(client: &AdminClient, command: Command, json: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let written = match command {
        Command::Tenant(TenantCommand::Create { name }) => {
            let tenant = client.create_tenant(&name).await?;
            output::tenant_created(&mut out, &tenant, json)
        }
        Command::Tenant(TenantCommand::List) => {
            let tenants = client.list_tenants().await?;
            output::tenant_list(&mut out, &tenants, json)
        }
        Command::Key(KeyCommand::Create { tenant_id, name }) => {
            let key = client.create_key(&tenant_id, &name).await?;
            output::key_created(&mut out, &tenant_id, &key, json)
        }
        Command::Key(KeyCommand::List { tenant_id }) => {
            let keys = client.list_keys(&tenant_id).await?;
            output::key_list(&mut out, &keys, json)
        }
        Command::Key(KeyCommand::Revoke { tenant_id, key_id }) => {
            client.revoke_key(&tenant_id, &key_id).await?;
            output::key_revoked(&mut out, &tenant_id, &key_id, json)
        }
    };
    // A closed stdout (such as `yyctl … | head -0`) after the change was made is not a failure
    // of the command.
    if let Err(error) = written
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Failure::Output(error.to_string()));
    }
    Ok(())
}

fn report(failure: &Failure) -> ExitCode {
    eprintln!("yyctl: {failure}");
    ExitCode::from(failure.exit_code())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_url("https://gateway.example/yy/").is_ok());
        assert!(parse_url("ftp://gateway.example").is_err());
        assert!(parse_url("mailto:ops@example.com").is_err());
        assert!(parse_url("gateway:8080").is_err());
    }
}
