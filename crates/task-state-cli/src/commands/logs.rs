//! `logs <ID> [--tail N] [--since TIME] [--follow [--interval SECONDS]]`.

use std::sync::Arc;
use std::time::Duration;

use task_state_console::{LogRead, LogTail};
use task_state_core::jiff::Timestamp;
use task_state_core::{Error, LogEntry, TaskRecord, TaskRepository, TaskTime};
use task_state_redis::{RecordWrites, RedisTaskRepository};

use crate::cli::LogsArgs;
use crate::failure::{Exit, Failure};
use crate::output::Output;

/// Prints the entries that `--since` and `--tail` select; with `--follow`, then prints the
/// entries added since, until the task reaches a terminal status (exit 0) or Ctrl-C (exit
/// 130): read again at each write of the record where the server publishes keyspace
/// notifications (and at the latest every `--interval`), every `--interval` where it does not.
pub(crate) async fn run(
    repo: &RedisTaskRepository,
    args: LogsArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let selection = Selection {
        since: args.since.map(|since| since.resolve(Timestamp::now())),
        tail: args.tail,
    };
    if !args.follow {
        let record = repo
            .get(&args.id)
            .await?
            .ok_or_else(|| Failure::not_found(&args.id))?;
        return selection.print_first(out, &record.logs);
    }
    let interrupted = tokio::select! {
        result = follow_until_terminal(repo, &args.id, args.interval, &selection, out) => return result,
        signal = tokio::signal::ctrl_c() => signal.is_ok(),
    };
    out.flush()?;
    if interrupted {
        Err(Failure::silent(Exit::Interrupted))
    } else {
        Err(Failure::new(Exit::Error, "cannot listen for Ctrl-C"))
    }
}

/// Which entries to print.
struct Selection {
    /// Only entries written at or after this; entries whose time cannot be read are left
    /// out when it is set.
    since: Option<Timestamp>,
    /// Of the first read, only the last this many.
    tail: Option<usize>,
}

impl Selection {
    fn wanted(&self, entry: &str) -> bool {
        match self.since {
            None => true,
            Some(since) => LogEntry::parse(entry).is_ok_and(|e| e.at.timestamp() >= since),
        }
    }

    /// Prints the selected entries of the first read.
    fn print_first(&self, out: &mut Output, logs: &[String]) -> Result<(), Failure> {
        let wanted: Vec<&String> = logs.iter().filter(|e| self.wanted(e)).collect();
        let skip = self
            .tail
            .map_or(0, |tail| wanted.len().saturating_sub(tail));
        for entry in &wanted[skip..] {
            out.log_entry(entry)?;
        }
        Ok(())
    }

    /// Prints the selected entries of `logs`.
    fn print(&self, out: &mut Output, logs: &[String]) -> Result<(), Failure> {
        for entry in logs.iter().filter(|e| self.wanted(e)) {
            out.log_entry(entry)?;
        }
        Ok(())
    }
}

/// The record being followed, as far as it was read: enough to tell, at the next read, the
/// entries added since from a record that is not the one followed any more.
#[derive(Debug)]
struct Followed {
    /// Its `created_at`, when it was stored in the record (a record without one reads it as
    /// the time of the read, which tells nothing).
    created_at: Option<TaskTime>,
    /// How many entries were read.
    seen: usize,
    /// The last of them.
    last: Option<String>,
}

/// What a read of the followed task brings.
#[derive(Debug, PartialEq)]
enum Read<'a> {
    /// The entries appended since the last read (perhaps none).
    Appended(&'a [String]),
    /// Another record stands under the id (deleted and created again, or its log rewritten):
    /// its whole log, and its `created_at` when it differs from the one followed.
    Replaced {
        logs: &'a [String],
        created_at: Option<TaskTime>,
    },
}

impl Followed {
    /// After the first read, which has shown (or left out) all of `record`'s entries;
    /// `read_at` is the time just before that read.
    fn new(record: &TaskRecord, read_at: Timestamp) -> Self {
        Followed {
            created_at: stored_created_at(record, read_at),
            seen: record.logs.len(),
            last: record.logs.last().cloned(),
        }
    }

    /// Takes in entries appended since the last read (a read of the record's tail).
    fn appended(&mut self, entries: &[String]) {
        self.seen += entries.len();
        if let Some(last) = entries.last() {
            self.last = Some(last.clone());
        }
    }

    /// Takes in a later read, made at `read_at`. A record is the one followed while its log
    /// begins with the entries already read and its `created_at` is the same; entries are
    /// only ever appended to a task's log, so anything else is a replacement, whose entries
    /// are all new to the reader.
    fn next<'a>(&mut self, record: &'a TaskRecord, read_at: Timestamp) -> Read<'a> {
        let logs = &record.logs;
        let created_at = stored_created_at(record, read_at);
        let recreated = matches!((self.created_at, created_at), (Some(a), Some(b)) if a != b);
        let continues = self.seen <= logs.len()
            && (self.seen == 0 || logs.get(self.seen - 1) == self.last.as_ref());
        let read = if continues && !recreated {
            Read::Appended(&logs[self.seen..])
        } else {
            Read::Replaced {
                logs,
                created_at: created_at.filter(|_| recreated),
            }
        };
        *self = Followed {
            created_at: created_at.or(self.created_at),
            seen: logs.len(),
            last: logs.last().cloned(),
        };
        read
    }
}

/// `record`'s `created_at` when it can have been stored: one at or after `read_at` is the
/// time of the read itself, given to a record stored without one (or written by a clock
/// ahead of ours, which tells nothing either). Compared in microseconds, as times are kept.
fn stored_created_at(record: &TaskRecord, read_at: Timestamp) -> Option<TaskTime> {
    let created = record.created_at.timestamp().as_microsecond();
    (created < read_at.as_microsecond()).then_some(record.created_at)
}

/// Follows the log of task `id` until it ends, woken by the record's writes where Redis
/// publishes them ([`RecordWrites`], as the console's live log is) and polling every `interval`
/// where it does not.
async fn follow_until_terminal(
    repo: &RedisTaskRepository,
    id: &str,
    interval: Duration,
    selection: &Selection,
    out: &mut Output,
) -> Result<(), Failure> {
    // Subscribed before the first read, so that no write after it goes unnoticed.
    let wakes = match RecordWrites::connect(repo).await {
        Ok(writes) => Some(writes),
        Err(e) => {
            tracing::info!(error = %e, "logs --follow polls: no keyspace notifications");
            None
        }
    };
    let bell = match &wakes {
        Some(wakes) => wakes.watch(id).await,
        None => None,
    };
    let followed = follow(
        repo,
        id,
        Wait {
            bell: bell.clone(),
            interval,
        },
        selection,
        out,
    )
    .await;
    if let (Some(wakes), Some(_)) = (&wakes, &bell) {
        wakes.unwatch(id).await;
    }
    followed
}

/// How the follower waits between two reads.
struct Wait {
    /// Rung at each write of the record, when the server publishes keyspace notifications.
    bell: Option<Arc<tokio::sync::Notify>>,
    /// The poll: with a bell, the longest wait (for writes made while the subscriber was
    /// reconnecting); without one, the wait.
    interval: Duration,
}

impl Wait {
    async fn next(&self) {
        match &self.bell {
            Some(bell) => {
                let _ = tokio::time::timeout(self.interval, bell.notified()).await;
            }
            None => tokio::time::sleep(self.interval).await,
        }
    }
}

/// Reads the log after each [`Wait`] and prints what was appended. It reads the record whole
/// once, then only what is new where the record allows ([`LogTail`], shared with the
/// console's live log), and whole again whenever it does not. A lost connection (a
/// restarted server, a failover) is waited out with a warning on stderr, polling every
/// `interval`: the client reconnects by itself, and following goes on.
async fn follow(
    repo: &RedisTaskRepository,
    id: &str,
    wait: Wait,
    selection: &Selection,
    out: &mut Output,
) -> Result<(), Failure> {
    let interval = wait.interval;
    let mut tail = LogTail::new(id);
    let mut followed: Option<Followed> = None;
    let mut lost = false;
    loop {
        let read_at = Timestamp::now();
        let read = match tail.read(repo).await {
            Ok(read) => read,
            Err(e @ Error::Backend { .. }) if followed.is_some() => {
                if !lost {
                    tracing::warn!("lost Redis, still following: {e}");
                    lost = true;
                }
                tokio::time::sleep(interval).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if lost {
            tracing::warn!("Redis is back, following again");
            lost = false;
        }
        let status = match (read, &mut followed) {
            (LogRead::Whole(record), None) => {
                selection.print_first(out, &record.logs)?;
                followed = Some(Followed::new(&record, read_at));
                record.status
            }
            (LogRead::Whole(record), Some(followed)) => {
                match followed.next(&record, read_at) {
                    Read::Appended(logs) => selection.print(out, logs)?,
                    Read::Replaced { logs, created_at } => {
                        out.flush()?;
                        match created_at {
                            Some(at) => tracing::warn!(
                                "task {id:?} was replaced (created_at {at}); its log from the start:"
                            ),
                            None => tracing::warn!(
                                "task {id:?} was replaced (its log no longer begins with the entries shown); its log from the start:"
                            ),
                        }
                        selection.print(out, logs)?;
                    }
                }
                record.status
            }
            (LogRead::Appended(entries, status), followed) => {
                selection.print(out, &entries)?;
                if let Some(followed) = followed {
                    followed.appended(&entries);
                }
                status
            }
            (LogRead::Missing, None) => return Err(Failure::not_found(id)),
            (LogRead::Missing, Some(_)) => {
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("task {id:?} was deleted while followed"),
                ))
            }
        };
        out.flush()?;
        if status.is_terminal() {
            return Ok(());
        }
        wait.next().await;
    }
}

#[cfg(test)]
mod tests {
    use task_state_core::{TaskStatus, Zone};

    use super::*;

    fn at(stamp: &str) -> Timestamp {
        stamp.parse().unwrap()
    }

    fn record(created: &str, logs: &[&str]) -> TaskRecord {
        let created = TaskTime::from_timestamp(at(created), &Zone::utc());
        let mut record = TaskRecord::new_at("1", "s", "u", TaskStatus::Running, created);
        record.logs = logs.iter().map(|e| (*e).to_owned()).collect();
        record
    }

    const READ: &str = "2026-01-02T00:00:00Z";
    const CREATED: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn entries_appended_to_the_followed_log_are_new() {
        let mut followed = Followed::new(&record(CREATED, &["a", "b"]), at(READ));
        let longer = record(CREATED, &["a", "b", "c"]);
        assert_eq!(
            followed.next(&longer, at(READ)),
            Read::Appended(&longer.logs[2..])
        );
        assert_eq!(followed.next(&longer, at(READ)), Read::Appended(&[]));
    }

    #[test]
    fn a_log_that_does_not_begin_with_the_entries_read_is_a_replacement() {
        for logs in [&[][..], &["x"], &["a", "x"], &["x", "y", "z"]] {
            let mut followed = Followed::new(&record(CREATED, &["a", "b"]), at(READ));
            let other = record(CREATED, logs);
            assert_eq!(
                followed.next(&other, at(READ)),
                Read::Replaced {
                    logs: &other.logs,
                    created_at: None
                },
                "{logs:?}"
            );
            // Followed from there on.
            let more = record(CREATED, &[logs, &["more"]].concat());
            assert_eq!(
                followed.next(&more, at(READ)),
                Read::Appended(&["more".to_owned()])
            );
        }
    }

    #[test]
    fn another_created_at_is_a_replacement_even_of_an_empty_log() {
        let mut followed = Followed::new(&record(CREATED, &[]), at(READ));
        let again = record("2026-01-01T12:00:00Z", &["new"]);
        assert_eq!(
            followed.next(&again, at(READ)),
            Read::Replaced {
                logs: &again.logs,
                created_at: Some(again.created_at)
            }
        );
        assert_eq!(followed.next(&again, at(READ)), Read::Appended(&[]));
    }

    #[test]
    fn a_created_at_given_by_the_read_itself_is_not_compared() {
        // A record stored without `created_at` reads it as the time of each read.
        let mut followed = Followed::new(&record(READ, &["a"]), at(READ));
        let later = "2026-01-02T00:00:05Z";
        let next = record(later, &["a", "b"]);
        assert_eq!(
            followed.next(&next, at(later)),
            Read::Appended(&next.logs[1..])
        );
    }
}
