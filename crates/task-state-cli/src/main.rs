//! `task-state`: inspect and change the task state that the DMS frontend and its workers keep
//! in Redis, from a shell.
//!
//! ```text
//! $ export DMS_REDIS_WRITE_URL=redis://127.0.0.1:6379/0
//! $ id=$(task-state create --service render --user alice --param frames=240)
//! $ task-state status "$id" running --log "worker started"
//! $ make 2>&1 | task-state log "$id" -
//! $ task-state status "$id" completed --if running
//! $ task-state list --service render
//! ```
//!
//! Exit codes: 0 success, 1 error (fsck: inconsistent), 2 usage, 3 task not found, 4 conflict,
//! 5 refused by the server, 6 fsck could not check, 7 a change whose reply was lost (it may
//! have been applied), 130 interrupted.
//! See `docs/cli.md` for a full session.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cli;
mod commands;
mod failure;
mod output;
mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    if cli.command.is_offline() {
        return match commands::offline(cli.command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => failure.report(&[]),
        };
    }
    // The janitor and the console run as services: their progress (and the console's audit
    // of writes) is the point of their log, and its lines need their time.
    let janitor = matches!(
        cli.command,
        cli::Command::Janitor { .. } | cli::Command::Console(_)
    );
    let verbose = if janitor {
        cli.global.verbose.max(1)
    } else {
        cli.global.verbose
    };
    let ansi = cli.global.color.enabled(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    if let Err(message) = init_tracing(verbose, janitor, ansi) {
        eprintln!("task-state: {message}");
        return ExitCode::from(failure::Exit::Usage as u8);
    }
    let secrets = settings::secrets(&cli.global);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("task-state: cannot start the async runtime: {e}");
            return ExitCode::from(failure::Exit::Error as u8);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // A read of stdin may still be blocked in a worker thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(&secrets),
    }
}

/// Logs go to stderr, so that stdout carries only the command's output. `RUST_LOG`, when
/// set and not empty, replaces the level that `-v` chooses (`RUST_LOG=debug`,
/// `RUST_LOG=task_state_redis=trace,info`).
///
/// # Errors
/// A message naming `RUST_LOG` when its directives do not parse.
fn init_tracing(verbose: u8, with_time: bool, ansi: bool) -> Result<(), String> {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| format!("RUST_LOG: {e}"))?,
        _ => EnvFilter::default().add_directive(level.into()),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_target(false);
    if with_time {
        builder.init();
    } else {
        builder.without_time().init();
    }
    Ok(())
}
