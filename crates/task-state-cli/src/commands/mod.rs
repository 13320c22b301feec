//! One module a command. Each takes the connected repository and the output, and returns a
//! [`Failure`] that carries its exit code.
//!
//! Commands that only need the repository contract take `&dyn TaskRepository`, so they work
//! on any backend; those that need Redis itself (`get --json`, `fsck` and `janitor`)
//! take the [`RedisTaskRepository`].

pub(crate) mod console;
mod create;
mod delete;
mod fsck;
mod get;
mod janitor;
mod jobs;
mod list;
mod log;
mod logs;
mod next_id;
mod result;
mod status;
mod users;

use std::io::Write;

use clap::CommandFactory;
use task_state_redis::RedisTaskRepository;

use crate::cli::{Cli, Command};
use crate::failure::{Exit, Failure};
use crate::output::Output;
use crate::settings;

/// Connects, runs the command, and closes the connections.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let fsck = matches!(cli.command, Command::Fsck { .. });
    let connected = async {
        let settings = settings::build(&cli.global)?;
        tracing::debug!(?settings, "connecting");
        Ok::<_, Failure>(RedisTaskRepository::connect(settings).await?)
    };
    let repo = match connected.await {
        Ok(repo) => repo,
        // For fsck, exit 1 means "inconsistent": a check that could not start is not that.
        Err(failure) if fsck => return Err(failure.with_exit(Exit::Unchecked)),
        Err(failure) => return Err(failure),
    };
    let mut out = Output::stdout(cli.global.color);
    let result = dispatch(&repo, cli.command, &mut out).await;
    let flushed = out.flush().map_err(Failure::from);
    repo.close().await;
    result.and(flushed)
}

/// The commands that need no Redis: completions and the manual page, on stdout.
pub(crate) fn offline(command: Command) -> Result<(), Failure> {
    let mut cli = Cli::command();
    // Rendered in memory first: clap_complete panics when its writer fails, and a closed
    // pipe (`task-state man | head`) is not a failure.
    let mut text = Vec::new();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli, "task-state", &mut text);
        }
        Command::Man => clap_mangen::Man::new(cli).render(&mut text)?,
        _ => return Err(Failure::new(Exit::Error, "this command needs Redis")),
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&text)?;
    Ok(stdout.flush()?)
}

async fn dispatch(
    repo: &RedisTaskRepository,
    command: Command,
    out: &mut Output,
) -> Result<(), Failure> {
    match command {
        Command::Get { id, json } => get::run(repo, &id, json, out).await,
        Command::List(args) => list::run(repo, args, out).await,
        Command::Users { service } => users::run(repo, &service, out).await,
        Command::Create(args) => create::run(repo, args, repo.settings().zone(), out).await,
        Command::Status(args) => status::run(repo, args, out).await,
        Command::Log { id, message } => log::run(repo, &id, &message).await,
        Command::Result(args) => result::run(repo, args).await,
        Command::Jobs { id, job_ids } => jobs::run(repo, &id, &job_ids).await,
        Command::Delete { id, dry_run } => delete::run(repo, &id, dry_run, out).await,
        Command::NextId { peek } => next_id::run(repo, peek, out).await,
        Command::Logs(args) => logs::run(repo, args, out).await,
        Command::Fsck(args) => fsck::run(repo, args, out).await,
        Command::Janitor {
            reconcile_interval,
            allow_missing_notifications,
            stats_interval,
        } => {
            janitor::run(
                repo,
                reconcile_interval,
                allow_missing_notifications,
                stats_interval,
            )
            .await
        }
        Command::Console(args) => console::run(repo, args).await,
        Command::Completions { .. } | Command::Man => offline(command),
    }
}
