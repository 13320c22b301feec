//! The server commands a benchmark needs beyond the repository's: flushing, loading a
//! script, the slow log.

use anyhow::{anyhow, bail, Context, Result};
use fred::prelude::{ClientLike, Pool, Value};
use fred::types::CustomCommand;

/// Sends one command on a connection of `pool`.
///
/// # Errors
/// The server's error, naming the command.
pub async fn command(pool: &Pool, name: &'static str, args: &[&str]) -> Result<Value> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    pool.next()
        .custom::<Value, _>(CustomCommand::new_static(name, None::<u16>, false), args)
        .await
        .with_context(|| format!("redis {name}"))
}

/// A reply as text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// The number of keys in the database.
///
/// # Errors
/// As [`command`].
pub async fn dbsize(pool: &Pool) -> Result<i64> {
    let reply = command(pool, "DBSIZE", &[]).await?;
    integer(&reply).ok_or_else(|| anyhow!("unexpected DBSIZE reply {reply:?}"))
}

/// Empties the database.
///
/// # Errors
/// As [`command`].
pub async fn flushdb(pool: &Pool) -> Result<()> {
    command(pool, "FLUSHDB", &[]).await.map(drop)
}

/// Loads a script and returns the SHA1 the server gave it.
///
/// # Errors
/// As [`command`].
pub async fn script_load(pool: &Pool, body: &str) -> Result<String> {
    let reply = command(pool, "SCRIPT", &["LOAD", body]).await?;
    text(&reply).ok_or_else(|| anyhow!("unexpected SCRIPT LOAD reply {reply:?}"))
}

/// Loads a library of Redis Functions (`FUNCTION LOAD REPLACE`).
///
/// # Errors
/// As [`command`]; on a server without Redis Functions (before 7.0) as well.
pub async fn function_load(pool: &Pool, library: &str) -> Result<()> {
    command(pool, "FUNCTION", &["LOAD", "REPLACE", library])
        .await
        .map(drop)
}

/// Stores `value` under `key`.
///
/// # Errors
/// As [`command`].
pub async fn set(pool: &Pool, key: &str, value: &str) -> Result<()> {
    command(pool, "SET", &[key, value]).await.map(drop)
}

/// The length of the string under `key`.
///
/// # Errors
/// As [`command`].
pub async fn strlen(pool: &Pool, key: &str) -> Result<i64> {
    let reply = command(pool, "STRLEN", &[key]).await?;
    integer(&reply).ok_or_else(|| anyhow!("unexpected STRLEN reply {reply:?}"))
}

/// The server's version, from `INFO server`.
///
/// # Errors
/// As [`command`].
pub async fn redis_version(pool: &Pool) -> Result<String> {
    let reply = command(pool, "INFO", &["server"]).await?;
    let info = text(&reply).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| anyhow!("no redis_version in INFO server"))
}

/// One configuration parameter.
///
/// # Errors
/// As [`command`].
pub async fn config_get(pool: &Pool, name: &str) -> Result<String> {
    let reply = command(pool, "CONFIG", &["GET", name]).await?;
    let value = match &reply {
        Value::Array(items) => items.get(1).and_then(text),
        Value::Map(map) => map.clone().inner().values().next().and_then(text),
        _ => None,
    };
    value.ok_or_else(|| anyhow!("unexpected CONFIG GET {name} reply {reply:?}"))
}

/// Sets one configuration parameter.
///
/// # Errors
/// As [`command`].
pub async fn config_set(pool: &Pool, name: &str, value: &str) -> Result<()> {
    command(pool, "CONFIG", &["SET", name, value])
        .await
        .map(drop)
}

/// Zeroes the server's statistics (`CONFIG RESETSTAT`), `INFO commandstats` included.
///
/// # Errors
/// As [`command`].
pub async fn reset_stats(pool: &Pool) -> Result<()> {
    command(pool, "CONFIG", &["RESETSTAT"]).await.map(drop)
}

/// What the server spent on one command since the last [`reset_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct CommandStat {
    /// The command, lowercase (`evalsha`, `setrange`, ...).
    pub name: String,
    /// Times it ran; commands that a script runs count too.
    pub calls: u64,
    /// Microseconds it ran in all.
    pub usec: u64,
}

/// The name that [`find_stat`] reads as the repository's script calls: `FCALL` (Redis 7.0
/// and later, the library of Redis Functions) or `EVALSHA` (Redis 6.2), whichever ran.
pub const SCRIPT: &str = "script";

/// The statistics of `command` in `stats` ([`SCRIPT`]: of FCALL, or of EVALSHA when no
/// FCALL ran).
pub fn find_stat<'a>(stats: &'a [CommandStat], command: &str) -> Option<&'a CommandStat> {
    if command == SCRIPT {
        return stats
            .iter()
            .find(|s| s.name == "fcall" && s.calls > 0)
            .or_else(|| stats.iter().find(|s| s.name == "evalsha"));
    }
    stats.iter().find(|s| s.name == command)
}

/// The server's time an operation over `ops` operations: the scripts' where any ran (a
/// script's time includes the commands it calls, which `INFO commandstats` lists as well),
/// else every command's but the bench's own (`CONFIG`, `INFO`): the optimistic write path's
/// `WATCH`, `GET`, … `EXEC`.
pub fn server_us_per_op(stats: &[CommandStat], ops: u64) -> f64 {
    let usec: u64 = match find_stat(stats, SCRIPT).filter(|s| s.calls > 0) {
        Some(script) => script.usec,
        None => stats
            .iter()
            .filter(|s| !["config", "info"].contains(&s.name.as_str()))
            .map(|s| s.usec)
            .sum(),
    };
    usec as f64 / ops.max(1) as f64
}

impl CommandStat {
    /// Microseconds a call.
    pub fn usec_per_call(&self) -> f64 {
        self.usec as f64 / self.calls.max(1) as f64
    }
}

/// `INFO commandstats`, the most time first.
///
/// # Errors
/// As [`command`].
pub async fn commandstats(pool: &Pool) -> Result<Vec<CommandStat>> {
    let reply = command(pool, "INFO", &["commandstats"]).await?;
    Ok(parse_commandstats(&text(&reply).unwrap_or_default()))
}

/// Reads the `cmdstat_<name>:calls=..,usec=..,...` lines of `INFO commandstats`.
pub fn parse_commandstats(info: &str) -> Vec<CommandStat> {
    let mut stats: Vec<CommandStat> = info
        .lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some(CommandStat {
                name: name.to_owned(),
                calls: field("calls")?,
                usec: field("usec")?,
            })
        })
        .collect();
    stats.sort_by_key(|s| std::cmp::Reverse(s.usec));
    stats
}

/// The slowest command of a slow log.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowCommand {
    /// How long it ran inside Redis, in microseconds.
    pub micros: i64,
    /// Its name and first argument, such as `MGET task:1`.
    pub command: String,
    /// How many entries the slow log held.
    pub entries: usize,
}

/// Records every command in the slow log from now on, up to `max_len` entries, and returns
/// the settings to restore with [`slowlog_restore`].
///
/// # Errors
/// As [`command`].
pub async fn slowlog_record_all(pool: &Pool, max_len: usize) -> Result<(String, String)> {
    let saved = (
        config_get(pool, "slowlog-log-slower-than").await?,
        config_get(pool, "slowlog-max-len").await?,
    );
    config_set(pool, "slowlog-max-len", &max_len.to_string()).await?;
    config_set(pool, "slowlog-log-slower-than", "0").await?;
    command(pool, "SLOWLOG", &["RESET"]).await?;
    Ok(saved)
}

/// Reads the slow log and puts back the settings [`slowlog_record_all`] returned.
///
/// # Errors
/// As [`command`], or a slow log that cannot be read.
pub async fn slowlog_restore(pool: &Pool, saved: &(String, String)) -> Result<SlowCommand> {
    // Stop recording before reading, so that the read is not in what it reads.
    config_set(pool, "slowlog-log-slower-than", &saved.0).await?;
    let reply = command(pool, "SLOWLOG", &["GET", "-1"]).await?;
    command(pool, "SLOWLOG", &["RESET"]).await?;
    config_set(pool, "slowlog-max-len", &saved.1).await?;
    slowest(&reply)
}

/// The longest entry of a `SLOWLOG GET` reply, skipping the benchmark's own `CONFIG` and
/// `SLOWLOG` commands.
///
/// # Errors
/// When the reply is not a slow log.
pub fn slowest(reply: &Value) -> Result<SlowCommand> {
    let Value::Array(entries) = reply else {
        bail!("unexpected SLOWLOG GET reply {reply:?}");
    };
    let mut slowest = SlowCommand {
        micros: 0,
        command: String::new(),
        entries: entries.len(),
    };
    for entry in entries {
        let Value::Array(fields) = entry else {
            bail!("unexpected slow log entry {entry:?}");
        };
        let micros = fields.get(2).and_then(integer).unwrap_or(0);
        let words: Vec<String> = match fields.get(3) {
            Some(Value::Array(args)) => args.iter().take(2).filter_map(text).collect(),
            _ => Vec::new(),
        };
        let name = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        if name == "CONFIG" || name == "SLOWLOG" {
            continue;
        }
        if micros > slowest.micros {
            slowest.micros = micros;
            slowest.command = words.join(" ");
        }
    }
    Ok(slowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, micros: i64, args: &[&str]) -> Value {
        Value::Array(vec![
            Value::Integer(id),
            Value::Integer(1_700_000_000),
            Value::Integer(micros),
            Value::Array(args.iter().map(|a| Value::from(*a)).collect()),
            Value::from("127.0.0.1:5000"),
            Value::from(""),
        ])
    }

    #[test]
    fn reads_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=2,usec=5,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=4,usec=400,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n";
        let stats = parse_commandstats(info);
        assert_eq!(stats[0].name, "evalsha");
        assert_eq!(stats[0].usec_per_call(), 100.0);
        assert_eq!((stats[1].calls, stats[1].usec), (2, 5));
    }

    #[test]
    fn finds_the_longest_command_but_not_our_own() {
        let reply = Value::Array(vec![
            entry(3, 9000, &["CONFIG", "SET", "x"]),
            entry(2, 420, &["MGET", "task:1", "task:2"]),
            entry(1, 35, &["SSCAN", "index:tasks", "0"]),
        ]);
        let slow = slowest(&reply).unwrap();
        assert_eq!(slow.micros, 420);
        assert_eq!(slow.command, "MGET task:1");
        assert_eq!(slow.entries, 3);
    }
}
