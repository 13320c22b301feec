//! How a mutation writes: by the script, or optimistically (WATCH/MULTI/EXEC or SET IFEQ).

use std::fmt;

use task_state_core::{Error, Result};

use super::WRITE_PATH_VAR;

/// How a mutation that edits a record (`set_status`, `transition`, `append_log(s)`,
/// `update_result`, `set_jobs`) writes it. `save`, `create` and `delete` always run their
/// script.
///
/// The optimistic paths read the record, edit its text in Rust (every byte outside the
/// edited values kept) and write it back with the same index and metadata writes as the
/// script; what they do not support (a record that does not decode, a task whose metadata
/// names another owner, a member given twice, a key of the wrong type) and a write that
/// raced another writer go to the script, which the server serialises. See
/// `docs/redis.md` ("The write path") for what each costs and guarantees.
///
/// ```
/// use task_state_redis::{RedisRepositorySettings, WritePath};
/// let settings = RedisRepositorySettings::builder()
///     .with_write_url("redis://127.0.0.1:6379")
///     .with_write_path(WritePath::Script)
///     .build()
///     .unwrap();
/// assert_eq!(settings.write_path(), WritePath::Script);
/// assert_eq!("watch".parse::<WritePath>().unwrap(), WritePath::Watch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritePath {
    /// The default: [`Watch`](Self::Watch) on the crate's own connections, for a record of
    /// any size (edits, saves that keep the task's owner, deletes); its cost to the server
    /// is under three `GET`+`SET`s of the record at ~1 KiB and about one at 100 KiB and more
    /// (less than one where the connection kept the record it wrote: [`KeptRecords`]),
    /// where a script's grows with the record (about 100 instructions a byte: 7–14 ms for an
    /// edit of a 1 MB record). Through TLS as over TCP. On a cluster, the record's step
    /// under `WATCH` on its slot's primary, then the metadata and index writes in plain
    /// commands (docs/cluster.md). [`Script`](Self::Script) where the server refuses those
    /// connections (no `HELLO 3` or `CLIENT TRACKING` for the user).
    #[default]
    Auto,
    /// Every mutation runs its Lua script (one round trip; the server's cost grows with the
    /// record); on a cluster the follow-ups too are the scripts, as before issue 21.
    Script,
    /// `WATCH` the record and its metadata hash on a connection of its own, read, edit in
    /// Rust, then `MULTI` … `EXEC`; the script after a conflict. The connections are the
    /// crate's own (RESP3, `CLIENT TRACKING ON NOLOOP OPTIN`): what they read of the index
    /// sets and metadata hashes, and the records they wrote ([`KeptRecords`]), is read again
    /// only once the server says it changed. On a cluster,
    /// the record alone, on its slot's primary (the metadata hash and the index sets are in
    /// other slots, written after it).
    Watch,
    /// Read, edit in Rust, then `SET … IFEQ <the text read>` (Valkey 8.1 and later), and the
    /// index and metadata writes after it; the script after a conflict. Where the server
    /// lacks `IFEQ`, and on a cluster, [`Watch`](Self::Watch).
    IfEq,
}

/// What the write path's connections keep of the records they write (paths
/// [`Watch`](WritePath::Watch) and [`Auto`](WritePath::Auto), on one node): a record of
/// `from_bytes` or more that a connection wrote is kept on it, under the server's tracking,
/// so that its next edit there reads no record. The server says when anyone else writes
/// the record (it is read again then); `budget_bytes` bounds the bytes kept on all the
/// connections of a repository together. The default keeps records from 16 KiB within
/// 32 MiB; a budget of zero keeps none.
///
/// ```
/// use task_state_redis::{KeptRecords, RedisRepositorySettings};
/// let settings = RedisRepositorySettings::builder()
///     .with_write_url("redis://127.0.0.1:6379")
///     .with_kept_records(KeptRecords { from_bytes: 64 * 1024, budget_bytes: 8 << 20 })
///     .build()
///     .unwrap();
/// assert_eq!(settings.kept_records().budget_bytes, 8 << 20);
/// assert_eq!(KeptRecords::default().from_bytes, 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptRecords {
    /// The smallest record kept, in bytes: below it, reading the record costs the server
    /// less than the two commands that keep it tracked.
    pub from_bytes: usize,
    /// The most bytes of records kept on a repository's connections together.
    pub budget_bytes: usize,
}

impl Default for KeptRecords {
    fn default() -> Self {
        KeptRecords {
            from_bytes: 16 * 1024,
            budget_bytes: 32 << 20,
        }
    }
}

impl WritePath {
    /// The name [`WRITE_PATH_VAR`] takes: `auto`, `script`, `watch` or `ifeq`.
    pub fn as_str(self) -> &'static str {
        match self {
            WritePath::Auto => "auto",
            WritePath::Script => "script",
            WritePath::Watch => "watch",
            WritePath::IfEq => "ifeq",
        }
    }
}

impl fmt::Display for WritePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WritePath {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(WritePath::Auto),
            "script" => Ok(WritePath::Script),
            "watch" => Ok(WritePath::Watch),
            "ifeq" => Ok(WritePath::IfEq),
            _ => Err(Error::Config(format!(
                "{WRITE_PATH_VAR}: {text:?} is not auto, script, watch or ifeq"
            ))),
        }
    }
}
