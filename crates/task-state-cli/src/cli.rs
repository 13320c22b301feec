//! The command line: global flags, and one [`Command`] variant a subcommand.
//!
//! The names and flags are an interface that shell scripts rely on: change them only in a
//! backwards-compatible way.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::value::RawValue;
use task_state_core::jiff::{SignedDuration, Timestamp};
use task_state_core::{PriorityLevel, TaskStatus};

use crate::output::ColorChoice;

/// Inspect and change task state in Redis (the DMS task_state layout).
///
/// Connection settings come from DMS_REDIS_WRITE_URL, DMS_REDIS_READ_URL,
/// DMS_REDIS_TASK_TTL_SECONDS and DMS_TIMEZONE; the global flags override them.
/// Exit codes: 0 success, 1 error, 2 usage, 3 task not found, 4 conflict, 5 refused by the
/// server (out of memory, read-only replica, ...: nothing was written), 6 fsck could not
/// check, 7 a change whose reply was lost (it may have been applied: check before repeating
/// it), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "task-state", version, max_term_width = 100, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Parses the command line, with clap's own help and errors coloured as `--color` says
/// (clap's `auto` already ignores an empty `NO_COLOR`).
pub(crate) fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command().color(clap_color(&args));
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// The `--color` value among `args`, read before clap parses them.
fn clap_color(args: &[std::ffi::OsString]) -> clap::ColorChoice {
    let mut value = None;
    let mut args = args.iter().filter_map(|a| a.to_str());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--color" {
            value = args.next();
        } else if let Some(v) = arg.strip_prefix("--color=") {
            value = Some(v);
        }
    }
    match value {
        Some("always") => clap::ColorChoice::Always,
        Some("never") => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    }
}

/// Lines that work when pasted into a POSIX shell in this order (a test runs them).
pub(crate) const EXAMPLES: &str = r#"Examples:
  export DMS_REDIS_WRITE_URL=redis://127.0.0.1:6379/0
  id=$(task-state create --service render --user alice --param frames=240 --param 'scene="forest"')
  task-state status "$id" running --log "worker started"
  printf 'frame 1 done\nframe 2 done\n' | task-state log "$id" -
  task-state status "$id"
  task-state logs "$id" --tail 2
  task-state status "$id" completed --if running
  task-state list --service render
  task-state get "$id" --json"#;

/// Flags that every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Name of the job list in records this command creates: jobs or active_jobs (a record
    /// that has one keeps it) [default: $DMS_TASK_JOBS_FIELD, else jobs]
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_jobs_field)]
    pub(crate) jobs_field: Option<task_state_core::JobsField>,
    /// How long to wait for Redis, to connect and for each command [default: 5 to connect, 10 a command]
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG, when set, takes precedence
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
    /// When to colour the output: auto colours on a terminal unless NO_COLOR is set and
    /// not empty
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub(crate) color: ColorChoice,
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
    /// Set a task's status, or print it when no new status is given
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
        /// Print what would be deleted, and delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Take the next id of the task id sequence and print it
    NextId {
        /// Print the id that would come next, without taking it
        #[arg(long)]
        peek: bool,
    },
    /// Print a task's log entries
    Logs(LogsArgs),
    /// Check that records, indexes and metadata agree; exit 1 when they do not, 6 when the
    /// check could not be done
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
        /// Seconds between two log lines of the counters
        #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
        stats_interval: Duration,
    },
    /// Serve the operator console, /metrics and /healthz over HTTP until SIGINT or SIGTERM
    Console(crate::commands::console::ConsoleArgs),
    /// Print a shell completion script
    ///
    /// For bash: task-state completions bash > ~/.local/share/bash-completion/completions/task-state
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    ///
    /// To read it: task-state man > task-state.1 && man ./task-state.1
    Man,
}

impl Command {
    /// Whether the command runs without Redis.
    pub(crate) fn is_offline(&self) -> bool {
        matches!(self, Command::Completions { .. } | Command::Man)
    }
}

/// `logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The task id
    pub(crate) id: String,
    /// Keep printing new entries until the task reaches a terminal status; a lost
    /// connection is waited out
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// How often --follow reads the log, in seconds; where Redis publishes keyspace
    /// notifications it reads at each write, and this is the longest wait
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds, requires = "follow")]
    pub(crate) interval: Duration,
    /// Only the last N entries (with --follow: then the new ones)
    #[arg(long, value_name = "N")]
    pub(crate) tail: Option<usize>,
    /// Only entries written at or after TIME: RFC 3339 (2026-11-29T17:04:38+09:00) or an
    /// age such as 90s, 15m, 2h, 1d
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub(crate) since: Option<Since>,
}

/// `--since`: a moment, or an age to subtract from now when the command runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Since {
    /// This moment.
    At(Timestamp),
    /// This long before now.
    Ago(Duration),
}

impl Since {
    /// The moment, with `now` for an age.
    pub(crate) fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Since::At(at) => at,
            Since::Ago(age) => SignedDuration::try_from(age)
                .ok()
                .and_then(|age| now.checked_sub(age).ok())
                .unwrap_or(Timestamp::MIN),
        }
    }
}

fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Since::At(at));
    }
    let unit_at = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(unit_at);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 => Ok(Since::Ago(Duration::from_secs(n.saturating_mul(scale)))),
        _ => Err(format!(
            "{text:?} is neither an RFC 3339 time with an offset (2026-11-29T17:04:38+09:00) nor an age (90s, 15m, 2h, 1d)"
        )),
    }
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
    /// With --repair: print what the repair would change, and change nothing
    #[arg(long, requires = "repair")]
    pub(crate) dry_run: bool,
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
    /// A parameter; the value is JSON, quoted for the shell: --param frames=240 --param name='"a b"' --param opts='{"x":[1]}'

    #[arg(long = "param", value_name = "KEY=JSON", value_parser = parse_param)]
    pub(crate) params: Vec<(String, Box<RawValue>)>,
    /// Scheduling priority
    #[arg(long, default_value = "low", value_parser = priority_parser())]
    pub(crate) priority: PriorityLevel,
}

/// `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The task id
    pub(crate) id: String,
    /// The new status; without it, the current status is printed
    #[arg(value_parser = status_parser())]
    pub(crate) status: Option<TaskStatus>,
    /// Append this log entry in the same step (an empty one appends nothing, as in Python)
    #[arg(long, value_name = "MSG", requires = "status")]
    pub(crate) log: Option<String>,
    /// Only if the current status is this one (repeat for several); else exit 4
    #[arg(long = "if", value_name = "STATUS", value_parser = status_parser(), requires = "status")]
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

/// `KEY=JSON`, the value checked as JSON and kept as its text, so that numbers keep every
/// digit.
fn parse_param(text: &str) -> Result<(String, Box<RawValue>), String> {
    let (key, json) = text
        .split_once('=')
        .ok_or_else(|| "expected KEY=JSON".to_owned())?;
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    let value = RawValue::from_string(json.to_owned()).map_err(|e| {
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

fn parse_jobs_field(text: &str) -> Result<task_state_core::JobsField, String> {
    text.parse()
        .map_err(|_| "expected jobs or active_jobs".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn params_keep_json_values_exactly() {
        let (key, value) = parse_param("ratio=0.30000000000000004").unwrap();
        assert_eq!(key, "ratio");
        assert_eq!(value.get(), "0.30000000000000004");
        let (_, value) = parse_param("big=123456789012345678901234567890").unwrap();
        assert_eq!(value.get(), "123456789012345678901234567890");
        let (_, value) = parse_param(r#"opts={"a":[1,{}],"b":"x=y"}"#).unwrap();
        assert_eq!(value.get(), r#"{"a":[1,{}],"b":"x=y"}"#);
        assert!(parse_param("name=bare words").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("novalue").is_err());
    }

    #[test]
    fn since_takes_a_time_or_an_age() {
        let at: Timestamp = "2026-11-29T08:04:38Z".parse().unwrap();
        assert_eq!(
            parse_since("2026-11-29T17:04:38+09:00").unwrap(),
            Since::At(at)
        );
        assert_eq!(
            parse_since("15m").unwrap(),
            Since::Ago(Duration::from_secs(900))
        );
        assert_eq!(
            parse_since("2h").unwrap().resolve(at),
            "2026-11-29T06:04:38Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("1d").unwrap(),
            Since::Ago(Duration::from_secs(86_400))
        );
        for bad in ["", "m", "10x", "yesterday", "2026-11-29"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn colour_follows_the_flag_the_terminal_and_no_color() {
        use std::ffi::OsStr;
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, empty));
        assert!(!ColorChoice::Auto.enabled(true, set));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, set));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
