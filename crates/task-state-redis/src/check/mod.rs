//! The consistency check and repair: records against indexes (`records`), indexes and
//! metadata hashes against records (`indexes`), and one user's index (`user`); each repair
//! is a script run by [`run_script`].

use std::collections::BTreeMap;

use fred::prelude::{
    ClientLike, Error as FredError, HashesInterface, KeysInterface, SetsInterface, Value,
};
use task_state_core::{compare_task_ids, validate_name, validate_task_id, Error, Result};

use crate::execution::Topology;
use crate::keys::{self, KeyFamily, LayoutKey};
use crate::repository::RedisTaskRepository;
use crate::scan::{self, text};
use crate::scripts::{Script, SCRIPTS};

mod indexes;
mod records;
mod user;

pub(crate) use indexes::users_without_tasks;
use indexes::{check_indexes, check_metadata};
use records::check_records;
pub use user::{check_user, plan_user_repair, UserCheckOptions, UserIndexReport, UserRepairPlan};

/// Records one MGET reads.
const RECORDS_PER_MGET: usize = 100;
/// Unreadable record keys kept as examples in the report.
const EXAMPLES: usize = 20;
/// Repairs listed in the report (the others are only counted).
const REPAIRS_LISTED: usize = 1_000;

/// What [`check`] does besides looking.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Repair what is found: add missing index entries and metadata, remove extra index
    /// entries and users, clean metadata hashes whose record is gone. Every repair is an
    /// atomic script that checks again before it writes, so a task changed meanwhile is left
    /// as its writer made it.
    pub repair: bool,
}

/// The part of the check that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPhase {
    /// Every record against the indexes it belongs to and its metadata hash.
    Records,
    /// Every index set against the records.
    Indexes,
    /// Every metadata hash against its record.
    Metadata,
}

/// Progress, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProgress {
    /// The running phase.
    pub phase: CheckPhase,
    /// Items done in this phase: records, index members or metadata hashes.
    pub done: u64,
    /// About how many items the phase has, when known (the size of `index:tasks` for the
    /// records phase).
    pub estimated_total: Option<u64>,
}

/// Missing and extra members of one index set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexDiff {
    /// Tasks (or users) that belong in the index but are not in it.
    pub missing: u64,
    /// Members that are in the index without belonging there: no record, a record of
    /// another service or user, or a user without tasks.
    pub extra: u64,
}

/// A key of the layout that holds another type than the layout says. The check reports it
/// and goes on; the repair never deletes or rewrites it (it may be another application's
/// key, or hold data someone needs): an operator decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongTypeKey {
    /// What the layout expects there: `string`, `set` or `hash`.
    pub expected: &'static str,
    /// What the key holds (`list`, `zset`, ...), as `TYPE` names it.
    pub found: String,
}

/// One change of the repair, as [`CheckReport::repairs`] lists them: what [`check`] with
/// `repair` does, and without it what it would do (`fsck --repair --dry-run`).
///
/// Each is one atomic script that checks again before it writes, so a task changed between
/// the check and the repair may see less done than listed. Serialized with an `action` tag:
/// `{"action": "remove_from_index", "key": "index:tasks", "members": ["ghost"]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Repair {
    /// `reindex.lua` on a task whose record is readable: add it to the index sets that lack
    /// it, and rewrite its metadata hash when that is missing or names another owner.
    Reindex {
        /// The task.
        task_id: String,
        /// The index sets that lack it (or its user, for `index:service:{s}:users`).
        add_to: Vec<String>,
        /// Its metadata hash is rewritten.
        metadata: bool,
    },
    /// `unindex.lua` (or `prune.lua`, for a service's user set): remove from an index set
    /// the members that do not belong there.
    RemoveFromIndex {
        /// The index set.
        key: String,
        /// The task ids (or users) to remove.
        members: Vec<String>,
    },
    /// A metadata hash whose record is gone: the index entries it names are removed, then
    /// the hash (as after an expiry).
    CleanOrphanMetadata {
        /// The task whose record is gone.
        task_id: String,
    },
}

impl std::fmt::Display for Repair {
    /// One line: `reindex task 5: add to index:tasks, index:user:alice; rewrite its metadata`,
    /// `remove from index:tasks: ghost 17`, `clean task:9:metadata, whose record is gone`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::Reindex {
                task_id,
                add_to,
                metadata,
            } => {
                write!(f, "reindex task {task_id}:")?;
                if !add_to.is_empty() {
                    write!(f, " add to {}", add_to.join(", "))?;
                }
                if *metadata {
                    let sep = if add_to.is_empty() { "" } else { ";" };
                    write!(f, "{sep} rewrite {}", keys::metadata(task_id))?;
                }
                Ok(())
            }
            Repair::RemoveFromIndex { key, members } => {
                write!(f, "remove from {key}: {}", members.join(" "))
            }
            Repair::CleanOrphanMetadata { task_id } => write!(
                f,
                "clean {} and the index entries it names: its record is gone",
                keys::metadata(task_id)
            ),
        }
    }
}

/// A key, or a member of an index set, that is not UTF-8, as [`CheckReport::not_utf8_examples`]
/// names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotUtf8 {
    /// The key, escaped when it is the one not UTF-8.
    pub key: String,
    /// The member of the set `key` that is not UTF-8, escaped; `None` when the key is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// What [`check`] found (and repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Records read.
    pub records: u64,
    /// Records that could not be read (their indexes cannot be judged): not JSON, no
    /// `service` or `user_id`, or names that cannot be part of a key (`""`, `a:user:b`). An
    /// empty string is no record (as for every read), not an unreadable one.
    pub unreadable: u64,
    /// Up to 20 unreadable record keys with the reason.
    pub unreadable_examples: Vec<(String, String)>,
    /// Keys (`task:*`, `index:*`) and index members that are not UTF-8, so that no name of
    /// the layout can be read from them: counted, never repaired (an operator decides).
    pub not_utf8: u64,
    /// Up to 20 of them, [escaped](u8::escape_ascii) (`task:\xff`): the key, and for an
    /// index member the member.
    pub not_utf8_examples: Vec<NotUtf8>,
    /// Per index key, its missing and extra members; only keys with a difference.
    pub indexes: BTreeMap<String, IndexDiff>,
    /// Records whose metadata hash is missing or names another service or user.
    pub metadata_mismatch: u64,
    /// Metadata hashes without a record (normal for up to 60 s after an expiry).
    pub orphan_metadata: u64,
    /// Fixes applied (index members added or removed, metadata written or cleaned).
    pub repaired: u64,
    /// The repairs, in the order the check found them: done with `repair`, to be done
    /// without it (a dry run). The first 1,000; the others are counted in
    /// [`repairs_not_listed`](Self::repairs_not_listed).
    pub repairs: Vec<Repair>,
    /// Repairs beyond those listed.
    pub repairs_not_listed: u64,
    /// Keys of the layout that hold another type than the layout says, by key. A task with
    /// such a key is not repaired: its repair would have to write that key.
    pub wrong_type: BTreeMap<String, WrongTypeKey>,
}

impl CheckReport {
    /// Index members missing, over all indexes.
    pub fn missing(&self) -> u64 {
        self.indexes.values().map(|d| d.missing).sum()
    }

    /// Index members extra, over all indexes.
    pub fn extra(&self) -> u64 {
        self.indexes.values().map(|d| d.extra).sum()
    }

    /// The verdict: true when nothing is out of place and everything could be read (no
    /// unreadable record, no key or member that is not UTF-8). `fsck`'s text, its JSON and
    /// its exit status all say this one fact.
    pub fn is_consistent(&self) -> bool {
        self.indexes.is_empty()
            && self.metadata_mismatch == 0
            && self.orphan_metadata == 0
            && self.wrong_type.is_empty()
            && self.unreadable == 0
            && self.not_utf8 == 0
    }

    fn unreadable_record(&mut self, key: String, reason: String) {
        self.unreadable += 1;
        if self.unreadable_examples.len() < EXAMPLES {
            self.unreadable_examples.push((key, reason));
        }
    }

    /// Counts names that are not UTF-8: keys (`member` `None`) or members of the set `key`.
    fn not_utf8(&mut self, key: &str, member: Option<String>) {
        self.not_utf8 += 1;
        if self.not_utf8_examples.len() < EXAMPLES {
            self.not_utf8_examples.push(NotUtf8 {
                key: key.to_owned(),
                member,
            });
        }
    }

    fn diff(&mut self, key: &str) -> &mut IndexDiff {
        self.indexes.entry(key.to_owned()).or_default()
    }

    fn plan(&mut self, repair: Repair) {
        if self.repairs.len() < REPAIRS_LISTED {
            self.repairs.push(repair);
        } else {
            self.repairs_not_listed += 1;
        }
    }

    fn wrong(&mut self, key: &str, expected: &'static str, found: String) {
        self.wrong_type
            .insert(key.to_owned(), WrongTypeKey { expected, found });
    }
}

/// Reports `key` as holding another type than `expected`, with the type it holds.
async fn note_wrong_type(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    key: &str,
    expected: &'static str,
) -> Result<()> {
    let found = scan::types(repo.writer().next(), vec![key.to_owned()])
        .await
        .map_err(|e| {
            repo.exec()
                .backend(e, &format!("reading the type of {key}"))
        })?;
    report.wrong(key, expected, found.into_iter().next().unwrap_or_default());
    Ok(())
}

#[derive(serde::Deserialize)]
struct Owner {
    service: String,
    user_id: String,
}

/// What an index set of the layout holds, read from its key.
pub(crate) enum IndexKind {
    Tasks,
    Service(String),
    ServiceUser(String, String),
    User(String),
    Users(String),
}

/// The index of the layout that `key` names: `index:tasks`, `index:service:{s}`,
/// `index:service:{s}:users`, `index:service:{s}:user:{u}` or `index:user:{u}`, with valid
/// names ([`validate_name`]). `None` for any other key, such as an application's own
/// `index:recent-searches` or `index:service:a:b:c`, which the check, the repair and the
/// reconciler leave alone.
pub(crate) fn classify(key: &str) -> Option<IndexKind> {
    match LayoutKey::parse(key)? {
        LayoutKey::TaskIndex => Some(IndexKind::Tasks),
        LayoutKey::ServiceIndex(service) => Some(IndexKind::Service(service)),
        LayoutKey::ServiceUsers(service) => Some(IndexKind::Users(service)),
        LayoutKey::ServiceUserIndex(service, user) => Some(IndexKind::ServiceUser(service, user)),
        LayoutKey::UserIndex(user) => Some(IndexKind::User(user)),
        _ => None,
    }
}

/// Checks that records, indexes and metadata hashes agree, and repairs them on request.
///
/// It walks the store with SCAN and SSCAN pages of 500 and MGET batches of 100, so it works
/// on any number of tasks with one batch in memory, and no command blocks Redis for long.
/// `progress` is called after every batch (for a progress bar). A store that changes during
/// the check may show differences that are only writes in flight; check again to confirm.
///
/// # Errors
/// [`task_state_core::Error::Backend`] when Redis fails; what was found so far is lost.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::{check, CheckOptions};
/// let report = check(&repo, CheckOptions { repair: false }, |p| eprintln!("{:?} {}", p.phase, p.done)).await?;
/// println!("missing {}, extra {}", report.missing(), report.extra());
/// # Ok(()) }
/// ```
pub async fn check(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    mut progress: impl FnMut(&CheckProgress) + Send,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    check_records(repo, options, &mut report, &mut progress).await?;
    check_indexes(repo, options, &mut report, &mut progress).await?;
    check_metadata(repo, options, &mut report, &mut progress).await?;
    Ok(report)
}

/// What the store holds at a task's record key.
enum Found {
    Missing,
    /// A key of another type, named by `TYPE`.
    WrongType(String),
    Unreadable(String),
    Owner(Owner),
}

/// What a record's bytes say of its owner. An empty string is no record (Python's
/// `if not raw: return None`); names that cannot be part of a key make it unreadable, as
/// for `list` and the mutations: its indexes cannot be judged, and no key is built from them.
fn owner_of(bytes: &[u8]) -> Found {
    if bytes.is_empty() {
        return Found::Missing;
    }
    match task_state_core::serde_json::from_slice::<Owner>(bytes) {
        Ok(owner) => match validate_name("service", &owner.service)
            .and_then(|()| validate_name("user id", &owner.user_id))
        {
            Ok(()) => Found::Owner(owner),
            Err(e) => Found::Unreadable(e.to_string()),
        },
        Err(e) => Found::Unreadable(e.to_string()),
    }
}

/// What the records of `ids` are.
async fn owners(repo: &RedisTaskRepository, ids: &[String]) -> Result<Vec<Found>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(RECORDS_PER_MGET) {
        let keys: Vec<String> = chunk.iter().map(|id| keys::record(id)).collect();
        let client = repo.writer().next();
        // On a cluster the records are in many slots: one GET each, pipelined.
        let values: Vec<Value> = match repo.exec().topology() {
            Topology::SingleNode => {
                client
                    .with_options(&scan::resendable())
                    .mget(keys.clone())
                    .await
            }
            Topology::Cluster => crate::cluster::get_each(client, keys.clone()).await,
        }
        .map_err(|e| repo.exec().backend(e, "reading records"))?;
        let start = out.len();
        let mut absent = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let bytes = match &value {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Bytes(b) => b.to_vec(),
                _ => {
                    absent.push(i);
                    out.push(Found::Missing);
                    continue;
                }
            };
            out.push(owner_of(&bytes));
        }
        // MGET answers nil both for a missing key and for a key of another type.
        let names: Vec<String> = absent.iter().map(|&i| keys[i].clone()).collect();
        let types = scan::types(repo.writer().next(), names)
            .await
            .map_err(|e| repo.exec().backend(e, "checking records"))?;
        for (i, kind) in absent.into_iter().zip(types) {
            if kind != "none" {
                out[start + i] = Found::WrongType(kind);
            }
        }
    }
    Ok(out)
}

/// Runs a repair script on `keys`, the first of which holds `expected` (`string` or `set`).
/// Its errors are classified as the mutations' are (`RedisFailure::scripting`).
/// A key of the wrong type that the script found, or a record it could not read (each
/// checks before it writes, so it wrote nothing), is reported, and the check goes on.
async fn run_script(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    script: &Script,
    (keys, expected): (Vec<String>, &'static str),
    args: Vec<String>,
) -> Result<u64> {
    let exec = repo.exec();
    let ran = match exec.topology() {
        Topology::Cluster => crate::cluster::repair(exec, script.name, &keys, args).await,
        Topology::SingleNode => {
            let first = keys.first().cloned().unwrap_or_default();
            match exec.exec(script, keys, args).await {
                Ok(Value::Integer(n)) => Ok(n.max(0) as u64),
                Ok(_) => Ok(0),
                Err(f) => Err(f
                    .scripting(
                        (&first, expected),
                        format!("repairing with {}", script.name),
                    )
                    .into()),
            }
        }
    };
    match ran {
        Err(Error::WrongType { key, expected }) => {
            note_wrong_type(repo, report, &key, expected).await?;
            Ok(0)
        }
        Err(Error::Decode { key, reason }) => {
            report.unreadable_record(key, reason);
            Ok(0)
        }
        other => other,
    }
}

/// What the layout expects at a `task:*` key: a record (`task:{id}`, a string) or a
/// metadata hash (`task:{id}:metadata`); `None` for other keys (`task:id:sequence`, ...).
fn task_key_kind(key: &str) -> Option<(String, &'static str)> {
    match LayoutKey::parse(key)? {
        LayoutKey::Record(id) => Some((id, "string")),
        LayoutKey::Metadata(id) => Some((id, "hash")),
        _ => None,
    }
}

/// One answer of a pipeline: the value, `None` for a key of the wrong type.
fn answer(
    answer: Option<std::result::Result<Value, FredError>>,
) -> Result<Option<Value>, FredError> {
    match answer {
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(e)) if scan::is_wrong_type(&e) => Ok(None),
        Some(Err(e)) => Err(e),
        None => Err(FredError::new(
            fred::error::ErrorKind::Protocol,
            "answers missing",
        )),
    }
}

/// Compile-time guard: the check and the reconciler can be spawned on a multi-threaded
/// runtime (their futures are `Send`).
#[allow(dead_code)]
fn futures_are_send(repo: &RedisTaskRepository) {
    fn send<T: Send>(_: T) {}
    send(check(repo, CheckOptions::default(), |_| {}));
    send(check_user(repo, "u", UserCheckOptions::default()));
    send(plan_user_repair(repo, &UserIndexReport::default()));
    send(crate::reconcile(repo));
}
