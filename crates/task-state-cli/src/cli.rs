//! The command line: global flags, and one [`Command`] variant a subcommand.
//!
//! The names and flags are an interface that shell scripts rely on: change them only in a
//! backwards-compatible way.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand};
use serde_json::Value;
use task_state_core::{PriorityLevel, TaskStatus};

/// Inspect and change task state in Redis (the DMS task_state layout).
///
/// Connection settings come from DMS_REDIS_WRITE_URL, DMS_REDIS_READ_URL,
/// DMS_REDIS_TASK_TTL_SECONDS and DMS_TIMEZONE; the global flags override them.
/// Exit codes: 0 success, 1 error, 2 usage, 3 task not found, 4 conflict, 5 refused by the
/// server (out of memory, read-only replica, ...: nothing was written).
#[derive(Debug, Parser)]
#[command(name = "task-state", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags that every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Redis URL for writes [default: $DMS_REDIS_WRITE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) write_url: Option<String>,
    /// Redis URL for reads, such as a replica [default: $DMS_REDIS_READ_URL, else the write URL]
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) read_url: Option<String>,
    /// TTL of records and indexes [default: $DMS_REDIS_TASK_TTL_SECONDS, else 7776000]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub(crate) ttl: Option<u64>,
    /// IANA time zone of timestamps [default: $DMS_TIMEZONE, else Asia/Seoul]
    #[arg(long, global = true, value_name = "ZONE")]
    pub(crate) timezone: Option<String>,
    /// How long to wait for Redis, to connect and for each command [default: 5 to connect, 10 a command]
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,
    /// More logging on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show one task: status, owner, times, result, jobs and logs
    Get {
        /// The task id
        id: String,
        /// Print the stored record JSON on one line, exactly as stored
        #[arg(long)]
        json: bool,
    },
    /// List tasks in task id order, optionally of one service and/or user
    List(ListArgs),
    /// List the users who have tasks in a service
    Users {
        /// The service
        service: String,
    },
    /// Register a new pending task and print its id
    Create(CreateArgs),
    /// Set a task's status
    Status(StatusArgs),
    /// Append a log entry; a MESSAGE of `-` appends each line of stdin
    Log {
        /// The task id
        id: String,
        /// The message, or `-` to read one entry a line from stdin
        message: String,
    },
    /// Set result fields; fields not given keep their value
    Result(ResultArgs),
    /// Replace a task's scheduler job ids
    Jobs {
        /// The task id
        id: String,
        /// The job ids
        #[arg(required = true)]
        job_ids: Vec<String>,
    },
    /// Delete a task, its metadata and its index entries
    Delete {
        /// The task id
        id: String,
    },
    /// Take the next id of the task id sequence and print it
    NextId {
        /// Print the id that would come next, without taking it
        #[arg(long)]
        peek: bool,
    },
    /// Print a task's log entries
    Logs {
        /// The task id
        id: String,
        /// Keep printing new entries until the task reaches a terminal status
        #[arg(short, long)]
        follow: bool,
        /// How often to poll with --follow, in seconds
        #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds, requires = "follow")]
        interval: Duration,
    },
    /// Check that records, indexes and metadata agree; exit 1 when they do not
    Fsck(FsckArgs),
    /// Clean expired tasks' index entries until SIGINT or SIGTERM: the expiry listener and the
    /// periodic reconciler
    Janitor {
        /// Seconds between reconciler sweeps; 0 disables them
        #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_interval)]
        reconcile_interval: Duration,
        /// Only warn when notify-keyspace-events lacks E and x (managed Redis may forbid
        /// CONFIG GET); the reconciler then does the cleaning
        #[arg(long)]
        allow_missing_notifications: bool,
    },
}

/// `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks of this service
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Only tasks of this user
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Only tasks in this status (repeat for several)
    #[arg(long, value_name = "STATUS", value_parser = status_parser())]
    pub(crate) status: Vec<TaskStatus>,
    /// Print one record JSON a line instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// `fsck`.
#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    /// Repair what is found, then check again
    #[arg(long)]
    pub(crate) repair: bool,
    /// Only compare index:user:USER with the union of the user's index:service:*:user:USER
    /// sets, and with --repair repair index:user:USER only (the global --ttl is its TTL)
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,
    /// With --user: only this service's index:service:SERVICE:user:USER
    #[arg(long, value_name = "SERVICE", requires = "user")]
    pub(crate) service: Option<String>,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub(crate) json: bool,
}

/// `create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The service that owns the task
    #[arg(long)]
    pub(crate) service: String,
    /// The user who owns the task
    #[arg(long)]
    pub(crate) user: String,
    /// The task id [default: the next id of the sequence]
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// A parameter; the value is JSON: `frames=240`, `name="a b"`, `opts={"x":[1]}`
    #[arg(long = "param", value_name = "KEY=JSON", value_parser = parse_param)]
    pub(crate) params: Vec<(String, Value)>,
    /// Scheduling priority
    #[arg(long, default_value = "low", value_parser = priority_parser())]
    pub(crate) priority: PriorityLevel,
}

/// `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The task id
    pub(crate) id: String,
    /// The new status
    #[arg(value_parser = status_parser())]
    pub(crate) status: TaskStatus,
    /// Append this log entry in the same step (an empty one appends nothing, as in Python)
    #[arg(long, value_name = "MSG")]
    pub(crate) log: Option<String>,
    /// Only if the current status is this one (repeat for several); else exit 4
    #[arg(long = "if", value_name = "STATUS", value_parser = status_parser())]
    pub(crate) only_if: Vec<TaskStatus>,
}

/// `result`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("fields").required(true).multiple(true))]
pub(crate) struct ResultArgs {
    /// The task id
    pub(crate) id: String,
    /// The pod status snapshot
    #[arg(long, value_name = "S", group = "fields")]
    pub(crate) pod_status: Option<String>,
    /// The launcher's output
    #[arg(
        long,
        value_name = "S",
        group = "fields",
        conflicts_with = "launcher_output_file"
    )]
    pub(crate) launcher_output: Option<String>,
    /// Read the launcher's output from a file (`-` for stdin)
    #[arg(long, value_name = "F", group = "fields")]
    pub(crate) launcher_output_file: Option<PathBuf>,
}

fn status_parser() -> impl TypedValueParser<Value = TaskStatus> {
    PossibleValuesParser::new(TaskStatus::ALL.map(TaskStatus::as_str))
        .map(|name| name.parse().expect("a listed status name parses"))
}

fn priority_parser() -> impl TypedValueParser<Value = PriorityLevel> {
    PossibleValuesParser::new(["low", "high"])
        .map(|name| name.parse().expect("a listed priority parses"))
}

/// `KEY=JSON`, the value parsed as JSON so that numbers and nesting are kept.
fn parse_param(text: &str) -> Result<(String, Value), String> {
    let (key, json) = text
        .split_once('=')
        .ok_or_else(|| "expected KEY=JSON".to_owned())?;
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    let value = serde_json::from_str(json).map_err(|e| {
        format!("the value of {key:?} is not JSON ({e}); quote strings: {key}='\"text\"'")
    })?;
    Ok((key.to_owned(), value))
}

/// Whole seconds, 0 allowed (it disables what the interval drives).
fn parse_interval(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err("expected more than 0 and at most 86400 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn params_keep_json_values_exactly() {
        let (key, value) = parse_param("ratio=0.30000000000000004").unwrap();
        assert_eq!(key, "ratio");
        assert_eq!(value.to_string(), "0.30000000000000004");
        let (_, value) = parse_param(r#"opts={"a":[1,{}],"b":"x=y"}"#).unwrap();
        assert_eq!(value.to_string(), r#"{"a":[1,{}],"b":"x=y"}"#);
        assert!(parse_param("name=bare words").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("novalue").is_err());
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
