//! One module a command. Each takes the connected repository and the output, and returns a
//! [`Failure`] that carries its exit code.
//!
//! Commands that only need the repository contract take `&dyn TaskRepository`, so they work
//! on any backend; those that need Redis itself (`get --json`, `fsck` and `janitor`)
//! take the [`RedisTaskRepository`].

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

use task_state_redis::RedisTaskRepository;

use crate::cli::{Cli, Command};
use crate::failure::Failure;
use crate::output::Output;
use crate::settings;

/// Connects, runs the command, and closes the connections.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let settings = settings::build(&cli.global)?;
    tracing::debug!(?settings, "connecting");
    let repo = RedisTaskRepository::connect(settings).await?;
    let mut out = Output::stdout();
    let result = dispatch(&repo, cli.command, &mut out).await;
    let flushed = out.flush().map_err(Failure::from);
    repo.close().await;
    result.and(flushed)
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
        Command::Status(args) => status::run(repo, args).await,
        Command::Log { id, message } => log::run(repo, &id, &message).await,
        Command::Result(args) => result::run(repo, args).await,
        Command::Jobs { id, job_ids } => jobs::run(repo, &id, &job_ids).await,
        Command::Delete { id } => delete::run(repo, &id).await,
        Command::NextId { peek } => next_id::run(repo, peek, out).await,
        Command::Logs {
            id,
            follow,
            interval,
        } => logs::run(repo, &id, follow.then_some(interval), out).await,
        Command::Fsck(args) => fsck::run(repo, args, out).await,
        Command::Janitor {
            reconcile_interval,
            allow_missing_notifications,
        } => janitor::run(repo, reconcile_interval, allow_missing_notifications).await,
    }
}
