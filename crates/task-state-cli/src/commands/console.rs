//! `console`: the operator console, `/metrics` and `/healthz` over HTTP (the
//! `task-state-console` crate), until SIGINT or SIGTERM; with `--janitor`, the expiry
//! listener and the reconciler in the same process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use task_state_console::{Backend, Console, ConsoleConfig, OperatorToken, TOKEN_VAR};
use task_state_core::Error;
use task_state_redis::RedisTaskRepository;

use crate::failure::Failure;

/// `console`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsoleArgs {
    /// The address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Offer "request cancellation" and delete to operators who sign in with a token of
    /// TASK_STATE_CONSOLE_TOKEN (name:secret; several separated by commas)
    #[arg(long)]
    allow_writes: bool,
    /// Run the expiry listener and the reconciler in this process, as `janitor` does
    #[arg(long)]
    janitor: bool,
    /// With --janitor: seconds between reconciler sweeps; 0 disables them
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "300",
        requires = "janitor"
    )]
    reconcile_interval: u64,
    /// With --janitor: only warn when notify-keyspace-events lacks E and x
    #[arg(long, requires = "janitor")]
    allow_missing_notifications: bool,
    /// Seconds between two counts of the tasks, for the overview and task_state_tasks
    #[arg(long, value_name = "SECONDS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    metrics_interval: u64,
    /// Services that task_state_tasks names (those with the most tasks); the others are
    /// summed under service=":other"
    #[arg(long, value_name = "N", default_value = "100",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    top_services: u64,
    /// Task lists filtered by status or sorted by a column other than the id, and bulk
    /// actions (each may read every record of its index), that may read records at once;
    /// past it the page answers 503 with Retry-After
    #[arg(long, value_name = "N", default_value = "4",
          value_parser = clap::value_parser!(u64).range(1..=1_000))]
    max_status_scans: u64,
    /// Live logs streamed at once (each task is read once however many pages follow it);
    /// past it a page is told to come back later
    #[arg(long, value_name = "N", default_value = "1000",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_live_logs: u64,
    /// A Host header to answer (repeat for several) [default: the --listen address, and
    /// localhost with its port, when that is a loopback address; required on any other
    /// address unless --allow-any-host]
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// On an address that is not loopback, answer any Host header (DNS rebinding can then
    /// reach the console from any site's page); without it, such a --listen needs
    /// --allowed-host
    #[arg(long, conflicts_with = "allowed_hosts")]
    allow_any_host: bool,
}

/// Serves until a signal, then stops the janitor if it ran.
pub(crate) async fn run(repo: &RedisTaskRepository, args: ConsoleArgs) -> Result<(), Failure> {
    let tokens = match std::env::var(TOKEN_VAR) {
        Ok(text) => OperatorToken::parse_list(&text)?,
        Err(_) => Vec::new(),
    };
    // Before the janitor starts or the port opens: nothing to undo.
    let config = console_config(&args, tokens)?;
    let janitor = match args.janitor {
        true => Some(Arc::new(
            super::janitor::start(
                repo,
                Duration::from_secs(args.reconcile_interval),
                args.allow_missing_notifications,
            )
            .await?,
        )),
        false => None,
    };
    let mut backend = Backend::redis(repo.clone());
    if let Some(janitor) = &janitor {
        backend = backend.with_janitor(janitor.clone());
    }
    let console = Console::new(config, backend)?;
    let socket = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", args.listen)))?;
    tracing::info!(
        listen = %args.listen,
        writes = args.allow_writes,
        janitor = janitor.is_some(),
        write_url = %repo.settings().write_url(),
        "console running: http://{}/",
        args.listen
    );
    let served = console
        .serve(socket, super::janitor::wait_for_signal())
        .await;
    tracing::info!("stopping");
    if let Some(janitor) = janitor {
        // Stopped even while the console's handlers still hold it.
        janitor.stop().await;
    }
    Ok(served?)
}

/// The console's configuration from the flags, refused when `--listen` would answer any
/// host where other machines reach it.
fn console_config(args: &ConsoleArgs, tokens: Vec<OperatorToken>) -> Result<ConsoleConfig, Error> {
    let mut config = ConsoleConfig::default();
    config.allow_writes = args.allow_writes;
    config.tokens = tokens;
    config.metrics_interval = Duration::from_secs(args.metrics_interval);
    config.top_services = usize::try_from(args.top_services).unwrap_or(usize::MAX);
    config.max_status_scans = usize::try_from(args.max_status_scans).unwrap_or(usize::MAX);
    config.max_live_streams = usize::try_from(args.max_live_logs).unwrap_or(usize::MAX);
    config.allowed_hosts = if args.allowed_hosts.is_empty() {
        default_hosts(args.listen)
    } else {
        args.allowed_hosts.clone()
    };
    config.allow_any_host = args.allow_any_host;
    config.validate_listen(args.listen)?;
    Ok(config)
}

/// The hosts a console on `listen` answers by default: on a loopback address, that address
/// and `localhost` with the port (a page of another site that a DNS trick points at
/// 127.0.0.1 sends its own name and is refused); on another address none, so that
/// [`ConsoleConfig::validate_listen`] asks for `--allowed-host` or `--allow-any-host`.
fn default_hosts(listen: SocketAddr) -> Vec<String> {
    if !listen.ip().is_loopback() {
        return Vec::new();
    }
    let port = listen.port();
    let mut hosts = vec![listen.to_string(), format!("localhost:{port}")];
    if port == 80 {
        // Browsers leave the default port out of `Host`.
        let ip = listen.to_string();
        hosts.push(ip.trim_end_matches(":80").to_owned());
        hosts.push("localhost".to_owned());
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        console: ConsoleArgs,
    }

    fn config_of(flags: &[&str]) -> Result<ConsoleConfig, Error> {
        use clap::Parser;
        let flags =
            Flags::try_parse_from(std::iter::once("console").chain(flags.iter().copied())).unwrap();
        console_config(&flags.console, Vec::new())
    }

    #[test]
    fn a_listen_other_machines_reach_needs_its_hosts_named() {
        for listen in ["0.0.0.0:8080", "[::]:8080", "192.0.2.7:8080"] {
            let e = config_of(&["--listen", listen]).unwrap_err();
            assert!(
                matches!(&e, Error::Config(m) if m.contains("--allowed-host") && m.contains(listen)),
                "{e}"
            );
        }
        let named = config_of(&["--listen", "0.0.0.0:8080", "--allowed-host", "c.example"]);
        assert_eq!(named.unwrap().allowed_hosts, ["c.example"]);
        let any = config_of(&["--listen", "0.0.0.0:8080", "--allow-any-host"]).unwrap();
        assert!(any.allow_any_host && any.allowed_hosts.is_empty());
        let local = config_of(&[]).unwrap();
        assert_eq!(local.allowed_hosts, ["127.0.0.1:8080", "localhost:8080"]);
        let bounds = config_of(&[
            "--top-services",
            "7",
            "--max-status-scans",
            "2",
            "--max-live-logs",
            "30",
        ])
        .unwrap();
        assert_eq!(
            (
                bounds.top_services,
                bounds.max_status_scans,
                bounds.max_live_streams
            ),
            (7, 2, 30)
        );
    }

    #[test]
    fn loopback_consoles_answer_only_their_own_names() {
        assert_eq!(
            default_hosts("127.0.0.1:8080".parse().unwrap()),
            ["127.0.0.1:8080", "localhost:8080"]
        );
        assert_eq!(
            default_hosts("[::1]:9000".parse().unwrap()),
            ["[::1]:9000", "localhost:9000"]
        );
        assert_eq!(
            default_hosts("127.0.0.1:80".parse().unwrap()),
            ["127.0.0.1:80", "localhost:80", "127.0.0.1", "localhost"]
        );
        assert!(default_hosts("0.0.0.0:8080".parse().unwrap()).is_empty());
    }
}
