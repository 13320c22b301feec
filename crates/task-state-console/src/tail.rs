//! Reading only what is new of a followed record on Redis.
//!
//! A record is one JSON string (`task:{id}`) whose fields come in the wire format's order:
//! `task_id`, `service`, `user_id`, `status`, ..., `logs`, `result`, `priority`, then any
//! unknown ones. Entries are only ever appended to `logs`, so once a record has been read
//! whole, a later read needs only its head (up to the status, whose offset never moves since
//! the fields before it never change) and its tail from the last entry already read to the
//! record's end (which gives the record's length): two `GETRANGE`s in one transaction, so
//! of one version of the record however busy its writer, in one round trip, instead of a
//! `GET` of the whole record (a log of 100 KB lines costs 100 KB a read otherwise). The tail
//! is read from where it was last time; when the head shows that it moved (a status or
//! `jobs` of another length), both are read again with the tail from where it is now.
//! Whatever does not read back exactly as expected (a record written in another order,
//! escaped otherwise than `serde_json` escapes, replaced, or changed too much before its log)
//! is read whole again, so the shortcut is never wrong, only sometimes not taken.

use task_state_core::{layout, Result, TaskRecord, TaskStatus};
use task_state_redis::RedisTaskRepository;

/// What a read of a followed log brings ([`LogTail::read`]).
#[derive(Debug, PartialEq)]
pub enum LogRead {
    /// The record, read whole: every entry of its log.
    Whole(Box<TaskRecord>),
    /// Entries appended since the last read (perhaps none), and the status now.
    Appended(Vec<String>, TaskStatus),
    /// There is no such record.
    Missing,
}

/// Bytes of the head read past where the log began in the last read, for changes of the
/// fields before it (`status`, `jobs`, `updated_at`) that move it.
const HEAD_MARGIN: usize = 256;

/// What comes just before the log's `[`: the end of `updated_at`, which holds no quote.
const LOG_OPENS: &[u8] = b",\"logs\":[";
/// The last top-level field before the log.
const UPDATED_AT: &[u8] = b",\"updated_at\":\"";
/// What closes the log.
const LOG_CLOSES: &[u8] = b"],\"result\":";

/// Where things are in the record last read.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// The record up to and including `,"status":"`.
    head: Vec<u8>,
    status: TaskStatus,
    /// The record's length.
    len: usize,
    /// The offset of the log's `[`.
    open: usize,
    /// The offset of the `]` that closes the log.
    close: usize,
    /// The end of the last entry as it is written (its last [`CHECKED`] bytes, with its
    /// closing quote), or `[` when the log is empty: the tail is read from there, so a long
    /// last entry is not read again, and it must be found exactly there.
    last: Vec<u8>,
}

/// Reads of the head and the tail tried before the record is read whole, while the head
/// keeps changing length between reads (each read then says where the tail is now).
const MOVES: usize = 4;

/// Bytes of the last entry read again to check that the tail is where it should be.
const CHECKED: usize = 64;

/// The end of `entry` as [`Layout::last`] keeps it.
fn ending(entry: &str) -> Option<Vec<u8>> {
    let written = serde_json::to_vec(entry).ok()?;
    Some(written[written.len().saturating_sub(CHECKED)..].to_vec())
}

/// The offset of the log's `[` in `head` (the record's beginning): just after the last
/// top-level `updated_at`. A key `updated_at` inside `parameters` comes before it, and the
/// entries of the log hold no unescaped quote.
fn log_opening(head: &[u8]) -> Option<usize> {
    let at = rfind(head, UPDATED_AT)? + UPDATED_AT.len();
    let end = at + head[at..].iter().position(|b| *b == b'"')?;
    head[end + 1..]
        .starts_with(LOG_OPENS)
        .then_some(end + 1 + LOG_OPENS.len() - 1)
}

impl Layout {
    /// Where things are in `raw`, which reads as `record`; `None` when `raw` is not laid out
    /// as this module expects.
    fn of(raw: &[u8], record: &TaskRecord) -> Option<Layout> {
        let marker = b",\"status\":\"";
        let at = find(raw, marker)? + marker.len();
        if status_at(&raw[at..])? != record.status {
            return None;
        }
        let logs = serde_json::to_vec(&record.logs).ok()?;
        let open = log_opening(raw)?;
        let close = open + logs.len() - 1;
        if raw.get(open..=close)? != &logs[..] || !raw[close..].starts_with(LOG_CLOSES) {
            return None;
        }
        let last = match record.logs.last() {
            Some(entry) => ending(entry)?,
            None => b"[".to_vec(),
        };
        Some(Layout {
            head: raw[..at].to_vec(),
            status: record.status,
            len: raw.len(),
            open,
            close,
            last,
        })
    }

    /// The length of the head to read: past where the log began, with room for the fields
    /// before it to have grown.
    fn head_len(&self) -> usize {
        self.open + 1 + HEAD_MARGIN
    }

    /// From a read `head` of the record now: its status, and the offset from which to read
    /// its tail (the last entry read, where it must be now); `None` when the head is not the
    /// one read before.
    fn locate(&self, head: &[u8]) -> Option<(TaskStatus, usize)> {
        if !head.starts_with(&self.head) {
            return None;
        }
        let status = status_at(&head[self.head.len()..])?;
        let open = log_opening(head)?;
        // The old entries have not moved within the log.
        let close = self.close - self.open + open;
        Some((status, close.checked_sub(self.last.len())?))
    }

    /// Where the tail was read from if the head is as it was: the last entry read.
    fn tail_offset(&self) -> usize {
        self.close.saturating_sub(self.last.len())
    }

    /// Takes in the tail from `from` of a record now `len` long, whose status is `status`:
    /// the entries appended, or `None` when they cannot be told (read the record whole).
    fn advance(
        &mut self,
        len: usize,
        status: TaskStatus,
        from: usize,
        tail: &[u8],
    ) -> Option<Vec<String>> {
        // The last entry read, then `,` and the new entries, or the `]` of the log; of an
        // empty log, its `[` and the entries.
        let empty = self.last == b"[";
        let rest = tail.strip_prefix(&self.last[..])?;
        let (appended, used) = match (empty, rest.first()?) {
            (_, b']') => (Vec::new(), 0),
            (false, b',') | (true, b'"') => {
                // `,"a","b"]...` read as the array `["a","b"]`.
                let mut array = Vec::with_capacity(rest.len() + 1);
                array.push(b'[');
                array.extend_from_slice(if empty { rest } else { &rest[1..] });
                let mut entries =
                    serde_json::Deserializer::from_slice(&array).into_iter::<Vec<String>>();
                let appended = entries.next()?.ok()?;
                let used = entries.byte_offset() - 1;
                (appended, if empty { used - 1 } else { used })
            }
            _ => return None,
        };
        let close = self.last.len() + used;
        if !tail[close..].starts_with(LOG_CLOSES) {
            return None;
        }
        let written = match appended.last() {
            Some(entry) => {
                let written = serde_json::to_vec(entry).ok()?;
                // Escaped as serde_json escapes, or the next read could not find it.
                if !tail[..close].ends_with(&written) {
                    return None;
                }
                ending(entry)?
            }
            None => self.last.clone(),
        };
        // Where the old log ended, less its length: where it begins now.
        let open = from + self.last.len() - (self.close - self.open);
        *self = Layout {
            head: std::mem::take(&mut self.head),
            status,
            len,
            open,
            close: from + close,
            last: written,
        };
        Some(appended)
    }
}

/// The last offset of `needle` in `haystack`.
fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The first offset of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status at the start of `text`, up to its closing quote.
fn status_at(text: &[u8]) -> Option<TaskStatus> {
    let end = text.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&text[..end]).ok()?.parse().ok()
}

/// A task's log followed on Redis: read whole once, then by the record's head and tail only
/// (the entries appended since, and the status). The console's live log and
/// `task-state logs --follow` read with it.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_console::{LogRead, LogTail};
///
/// let mut tail = LogTail::new("42");
/// loop {
///     match tail.read(&repo).await? {
///         LogRead::Whole(record) => println!("{} entries, {}", record.logs.len(), record.status),
///         LogRead::Appended(entries, status) => {
///             entries.iter().for_each(|e| println!("{e}"));
///             if status.is_terminal() { break; }
///         }
///         LogRead::Missing => break,
///     }
///     tokio::time::sleep(std::time::Duration::from_millis(500)).await;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LogTail {
    task_id: String,
    key: String,
    layout: Option<Layout>,
}

impl LogTail {
    /// The log of `task_id`, not read yet.
    pub fn new(task_id: &str) -> Self {
        LogTail {
            task_id: task_id.to_owned(),
            key: layout::record_key(task_id),
            layout: None,
        }
    }

    /// Reads what is new since the last read, from `repo`'s readers: the whole record the
    /// first time, and whenever the shortcut cannot be taken (see the module's docs).
    ///
    /// # Errors
    /// [`Error::Backend`](task_state_core::Error::Backend) when Redis fails,
    /// [`Error::Decode`](task_state_core::Error::Decode) for a record that cannot be read,
    /// [`Error::InvalidInput`](task_state_core::Error::InvalidInput) for a task id that
    /// cannot be one.
    pub async fn read(&mut self, repo: &RedisTaskRepository) -> Result<LogRead> {
        let id = self.task_id.as_str();
        if let Some(mut layout) = self.layout.take() {
            // Where the tail was last time: where it is now unless the head changed length.
            let mut from = layout.tail_offset();
            for _ in 0..MOVES {
                // The head and the tail, of one version of the record (one transaction).
                let mut ranges = repo
                    .record_ranges(id, &[(0, layout.head_len()), (from, usize::MAX)])
                    .await?;
                let (Some(tail), Some(head)) = (ranges.pop(), ranges.pop()) else {
                    break;
                };
                if head.is_empty() {
                    return Ok(LogRead::Missing);
                }
                let Some((status, now)) = layout.locate(&head) else {
                    break;
                };
                if now != from {
                    // The head changed length (a status, `jobs` or a timestamp of another
                    // length): the tail is elsewhere, read again from there.
                    from = now;
                    continue;
                }
                let len = from + tail.len();
                if len == layout.len && status == layout.status {
                    // Entries only grow a record: nothing was appended.
                    self.layout = Some(layout);
                    return Ok(LogRead::Appended(Vec::new(), status));
                }
                if let Some(appended) = layout.advance(len, status, from, &tail) {
                    self.layout = Some(layout);
                    return Ok(LogRead::Appended(appended, status));
                }
                break;
            }
        }
        let Some(raw) = repo.get_raw(id).await? else {
            return Ok(LogRead::Missing);
        };
        let record = TaskRecord::from_json_at(&self.key, &raw)?;
        self.layout = Layout::of(&raw, &record);
        Ok(LogRead::Whole(Box::new(record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TaskStatus, logs: &[&str], jobs: &[&str]) -> TaskRecord {
        let mut r = TaskRecord::new("7", "render", "alice", status);
        r.logs = logs.iter().map(|l| (*l).to_owned()).collect();
        r.jobs = jobs.iter().map(|j| (*j).to_owned()).collect();
        r
    }

    /// What [`Tail::read`] would do with `before` read whole and `after` stored now.
    fn appended(before: &TaskRecord, after: &TaskRecord) -> Option<(Vec<String>, TaskStatus)> {
        let old = before.to_json().into_bytes();
        let mut layout = Layout::of(&old, before).expect("laid out as expected");
        let new = after.to_json().into_bytes();
        let head = &new[..layout.head_len().min(new.len())];
        let (status, from) = layout.locate(head)?;
        let tail = new.get(from..)?;
        let appended = layout.advance(new.len(), status, from, tail)?;
        Some((appended, status))
    }

    #[test]
    fn entries_appended_are_read_from_the_tail() {
        let long = "x".repeat(100_000);
        let before = record(TaskStatus::Running, &["a", &long, "b"], &[]);
        let after = record(
            TaskStatus::Completed,
            &["a", &long, "b", "c, \"quoted\"\nnew", "ünïcode"],
            &["slurm-1"],
        );
        assert_eq!(
            appended(&before, &after),
            Some((
                vec!["c, \"quoted\"\nnew".to_owned(), "ünïcode".to_owned()],
                TaskStatus::Completed
            ))
        );
        let empty = record(TaskStatus::Pending, &[], &[]);
        assert_eq!(
            appended(&empty, &record(TaskStatus::Running, &["first"], &[])),
            Some((vec!["first".to_owned()], TaskStatus::Running))
        );
        assert_eq!(
            appended(&before, &before),
            Some((Vec::new(), TaskStatus::Running))
        );
    }

    #[test]
    fn successive_reads_follow_the_log() {
        let mut logs: Vec<String> = Vec::new();
        let first = record(TaskStatus::Pending, &[], &[]);
        let mut layout = Layout::of(first.to_json().as_bytes(), &first).unwrap();
        for (n, jobs) in [&[][..], &["j-1"], &["j-1", "j-22"], &[]]
            .into_iter()
            .enumerate()
        {
            logs.push(format!("entry {n}"));
            let refs: Vec<&str> = logs.iter().map(String::as_str).collect();
            let now = record(TaskStatus::Running, &refs, jobs)
                .to_json()
                .into_bytes();
            let head = &now[..layout.head_len().min(now.len())];
            let (status, from) = layout.locate(head).unwrap();
            let appended = layout.advance(now.len(), status, from, &now[from..]);
            assert_eq!(appended, Some(vec![format!("entry {n}")]), "read {n}");
        }
    }

    #[test]
    fn a_record_that_is_not_the_one_read_is_read_whole() {
        let before = record(TaskStatus::Running, &["a", "b"], &[]);
        // Replaced by a record with another log: the last entry read is not there.
        assert_eq!(
            appended(&before, &record(TaskStatus::Running, &["x"], &[])),
            None
        );
        // Another owner: the head differs.
        let mut other = record(TaskStatus::Running, &["a", "b", "c"], &[]);
        other.service = "etl".to_owned();
        assert_eq!(appended(&before, &other), None);
    }

    proptest::proptest! {
        /// Whatever is appended, with whatever changes before the log, the shortcut reads
        /// exactly the entries appended.
        #[test]
        fn the_tail_reads_exactly_what_was_appended_or_nothing(
            old in proptest::collection::vec("\\PC{0,40}", 0..5),
            new in proptest::collection::vec("\\PC{0,40}", 0..5),
            jobs in proptest::collection::vec("[a-z0-9-]{0,30}", 0..4),
            status in proptest::sample::select(TaskStatus::ALL.to_vec()),
        ) {
            let olds: Vec<&str> = old.iter().map(String::as_str).collect();
            let all: Vec<&str> = olds.iter().copied().chain(new.iter().map(String::as_str)).collect();
            let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
            let before = record(TaskStatus::Pending, &olds, &[]);
            let after = record(status, &all, &jobs);
            // Written as the wire format writes it, the shortcut is always taken.
            let (read, read_status) = appended(&before, &after).expect("read from the tail");
            proptest::prop_assert_eq!(read, new);
            proptest::prop_assert_eq!(read_status, status);
        }
    }
}
