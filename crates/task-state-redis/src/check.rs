//! The consistency check and repair: records against indexes, indexes against records.

use std::collections::BTreeMap;

use fred::prelude::{
    ClientLike, Error as FredError, HashesInterface, KeysInterface, SetsInterface, Value,
};
use task_state_core::{compare_task_ids, validate_name, validate_task_id, Error, Result};

use crate::keys::{self, LayoutKey};
use crate::repository::RedisTaskRepository;
use crate::scan::{self, text};
use crate::scripts::{Script, SCRIPTS};

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
        .map_err(|e| repo.backend(e, &format!("reading the type of {key}")))?;
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
        let values: Vec<Value> = if repo.is_cluster() {
            crate::cluster::get_each(client, keys.clone()).await
        } else {
            client
                .with_options(&scan::resendable())
                .mget(keys.clone())
                .await
        }
        .map_err(|e| repo.backend(e, "reading records"))?;
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
            .map_err(|e| repo.backend(e, "checking records"))?;
        for (i, kind) in absent.into_iter().zip(types) {
            if kind != "none" {
                out[start + i] = Found::WrongType(kind);
            }
        }
    }
    Ok(out)
}

/// Runs a repair script on `keys`, the first of which holds `expected` (`string` or `set`).
/// Its errors are classified as the mutations' are ([`RedisTaskRepository::script_error_at`]).
/// A key of the wrong type that the script found, or a record it could not read (each
/// checks before it writes, so it wrote nothing), is reported, and the check goes on.
async fn run_script(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    script: &Script,
    (keys, expected): (Vec<String>, &'static str),
    args: Vec<String>,
) -> Result<u64> {
    let ran = if repo.is_cluster() {
        crate::cluster::repair(repo, script.name, &keys, args).await
    } else {
        let first = keys.first().cloned().unwrap_or_default();
        match repo.eval_keys(script, keys, args).await {
            Ok(Value::Integer(n)) => Ok(n.max(0) as u64),
            Ok(_) => Ok(0),
            Err(e) => Err(repo.script_error_at(
                e,
                (&first, expected),
                &format!("repairing with {}", script.name),
            )),
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

async fn check_records(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let estimated: u64 = repo
        .writer()
        .next()
        .with_options(&scan::resendable())
        .scard(keys::TASK_INDEX)
        .await
        .unwrap_or(0);
    // A user missing from a service's user set is one missing member, however many of
    // their tasks show it.
    let mut missing_users = std::collections::HashSet::new();
    // Every type, so that a record or metadata key of another type is reported too.
    let mut pages = scan::KeyPages::new(repo, "task:*", "");
    while let Some(keys) = pages.next().await? {
        for key in std::mem::take(&mut pages.not_utf8) {
            report.not_utf8(&key, None);
        }
        let keys: Vec<(&str, String, &'static str)> = keys
            .iter()
            .filter_map(|k| task_key_kind(k).map(|(id, expected)| (k.as_str(), id, expected)))
            .collect();
        let names: Vec<String> = keys.iter().map(|k| k.0.to_owned()).collect();
        let types = scan::types(repo.writer().next(), names)
            .await
            .map_err(|e| repo.backend(e, "checking records"))?;
        let mut ids = Vec::new();
        for ((key, id, expected), found) in keys.iter().zip(types) {
            if found == "none" {
                continue;
            }
            if found != *expected {
                report.wrong(key, expected, found);
            } else if *expected == "string" {
                ids.push(id.clone());
            }
        }
        let found = owners(repo, &ids).await?;
        let client = repo.writer().next();
        let pipeline = client.pipeline().with_options(&scan::resendable());
        let mut checked = Vec::new();
        for (id, owner) in ids.iter().zip(found) {
            match owner {
                Found::Missing => {}
                Found::WrongType(kind) => report.wrong(&keys::record(id), "string", kind),
                Found::Unreadable(reason) => report.unreadable_record(keys::record(id), reason),
                Found::Owner(owner) => {
                    report.records += 1;
                    let (s, u) = (&owner.service, &owner.user_id);
                    let expected = [
                        (keys::TASK_INDEX.to_owned(), id.clone()),
                        (keys::service_index(s), id.clone()),
                        (keys::service_users(s), u.clone()),
                        (keys::service_user_index(s, u), id.clone()),
                        (keys::user_index(u), id.clone()),
                    ];
                    for (key, member) in &expected {
                        let _: () = pipeline
                            .sismember(key.as_str(), member.as_str())
                            .await
                            .map_err(|e| repo.backend(e, "checking indexes"))?;
                    }
                    let _: () = pipeline
                        .hmget(keys::metadata(id), vec!["service", "user_id"])
                        .await
                        .map_err(|e| repo.backend(e, "checking metadata"))?;
                    checked.push((id.clone(), owner, expected));
                }
            }
        }
        let answers: Vec<std::result::Result<Value, FredError>> = if checked.is_empty() {
            Vec::new()
        } else {
            scan::try_all(client, &pipeline)
                .await
                .map_err(|e| repo.backend(e, "checking indexes"))?
        };
        let mut answers = answers.into_iter();
        for (id, owner, expected) in checked {
            let mut broken = false;
            let mut add_to = Vec::new();
            // A key of the wrong type: reported, and the task not repaired, since its
            // repair would write that key.
            let mut blocked = false;
            for (key, member) in &expected {
                let Some(present) =
                    answer(answers.next()).map_err(|e| repo.backend(e, "checking indexes"))?
                else {
                    note_wrong_type(repo, report, key, "set").await?;
                    blocked = true;
                    continue;
                };
                if !matches!(present, Value::Integer(1) | Value::Boolean(true)) {
                    broken = true;
                    add_to.push(key.clone());
                    let first = !key.ends_with(":users")
                        || missing_users.insert((key.clone(), member.clone()));
                    if first {
                        report.diff(key).missing += 1;
                    }
                }
            }
            let meta_key = keys::metadata(&id);
            let mut metadata = false;
            match answer(answers.next()).map_err(|e| repo.backend(e, "checking metadata"))? {
                None => {
                    note_wrong_type(repo, report, &meta_key, "hash").await?;
                    blocked = true;
                }
                Some(meta) => {
                    let meta = match meta {
                        Value::Array(fields) => fields.iter().map(text).collect::<Vec<_>>(),
                        _ => Vec::new(),
                    };
                    if meta != [Some(owner.service.clone()), Some(owner.user_id.clone())] {
                        report.metadata_mismatch += 1;
                        broken = true;
                        metadata = true;
                    }
                }
            }
            if broken && !blocked {
                report.plan(Repair::Reindex {
                    task_id: id.clone(),
                    add_to,
                    metadata,
                });
            }
            if broken && !blocked && options.repair {
                let keys = vec![keys::record(&id), meta_key];
                report.repaired +=
                    run_script(repo, report, &SCRIPTS.reindex, (keys, "string"), vec![id]).await?;
            }
        }
        progress(&CheckProgress {
            phase: CheckPhase::Records,
            done: report.records + report.unreadable,
            estimated_total: Some(estimated),
        });
    }
    Ok(())
}

async fn check_indexes(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut done = 0;
    // Every type, so that an index key of another type is reported too.
    let mut pages = scan::KeyPages::new(repo, "index:*", "");
    while let Some(keys) = pages.next().await? {
        for key in std::mem::take(&mut pages.not_utf8) {
            report.not_utf8(&key, None);
        }
        let keys: Vec<(String, IndexKind)> = keys
            .into_iter()
            .filter_map(|key| classify(&key).map(|kind| (key, kind)))
            .collect();
        let names: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let types = scan::types(repo.writer().next(), names)
            .await
            .map_err(|e| repo.backend(e, "checking indexes"))?;
        for ((key, kind), found) in keys.into_iter().zip(types) {
            match found.as_str() {
                "set" => {
                    check_index(repo, options, report, &key, &kind, &mut done, progress).await?
                }
                "none" => {}
                _ => report.wrong(&key, "set", found),
            }
        }
    }
    Ok(())
}

/// One index set against the records, SSCAN page by SSCAN page.
async fn check_index(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    key: &str,
    kind: &IndexKind,
    done: &mut u64,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut set_cursor = "0".to_owned();
    loop {
        let scan::Page {
            next: set_next,
            items: members,
            not_utf8,
        } = match scan::members_page(repo.writer().next(), key, &set_cursor).await {
            Ok(page) => page,
            // Replaced by a key of another type since the SCAN saw it.
            Err(e) if scan::is_wrong_type(&e) => {
                return note_wrong_type(repo, report, key, "set").await
            }
            Err(e) => return Err(repo.backend(e, &format!("scanning {key}"))),
        };
        for member in not_utf8 {
            report.not_utf8(key, Some(member));
        }
        *done += members.len() as u64;
        let extra = match kind {
            IndexKind::Users(service) => {
                users_without_tasks(repo, report, service, &members).await?
            }
            kind => tasks_not_belonging(repo, report, kind, &members).await?,
        };
        if !extra.is_empty() {
            report.diff(key).extra += extra.len() as u64;
            report.plan(Repair::RemoveFromIndex {
                key: key.to_owned(),
                members: extra.clone(),
            });
            if options.repair {
                let (script, mut args) = match kind {
                    IndexKind::Users(service) => (&SCRIPTS.prune, vec![format!("users:{service}")]),
                    IndexKind::Tasks => (
                        &SCRIPTS.unindex,
                        vec!["tasks".into(), String::new(), String::new()],
                    ),
                    IndexKind::Service(s) => (
                        &SCRIPTS.unindex,
                        vec!["service".into(), s.clone(), String::new()],
                    ),
                    IndexKind::ServiceUser(s, u) => (
                        &SCRIPTS.unindex,
                        vec!["service_user".into(), s.clone(), u.clone()],
                    ),
                    IndexKind::User(u) => (
                        &SCRIPTS.unindex,
                        vec!["user".into(), String::new(), u.clone()],
                    ),
                };
                args.extend(extra);
                report.repaired +=
                    run_script(repo, report, script, (vec![key.to_owned()], "set"), args).await?;
            }
        }
        progress(&CheckProgress {
            phase: CheckPhase::Indexes,
            done: *done,
            estimated_total: None,
        });
        set_cursor = set_next;
        if set_cursor == "0" {
            return Ok(());
        }
    }
}

/// The users of `index:service:{service}:users` without a task there, and the members that
/// are no user id (`""`, `a:b`: no task can name them). A user whose index is a key of the
/// wrong type is reported, not counted.
async fn users_without_tasks(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    service: &str,
    users: &[String],
) -> Result<Vec<String>> {
    let (valid, mut extra): (Vec<String>, Vec<String>) = users
        .iter()
        .cloned()
        .partition(|user| validate_name("user id", user).is_ok());
    let keys: Vec<String> = valid
        .iter()
        .map(|user| keys::service_user_index(service, user))
        .collect();
    let counts = scan::per_key_each(repo.writer().next(), "SCARD", keys.clone())
        .await
        .map_err(|e| repo.backend(e, "checking users"))?;
    for ((user, key), count) in valid.iter().zip(&keys).zip(counts) {
        match count {
            Ok(0) => extra.push(user.clone()),
            Ok(_) => {}
            Err(e) if scan::is_wrong_type(&e) => note_wrong_type(repo, report, key, "set").await?,
            Err(e) => return Err(repo.backend(e, "checking users")),
        }
    }
    Ok(extra)
}

/// The ids of `ids` that do not belong in an index of `kind`: no record (or an empty
/// string), a record of another owner, or a member that is no task id (`""`, `a:b`: no
/// record can have it).
async fn tasks_not_belonging(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    kind: &IndexKind,
    ids: &[String],
) -> Result<Vec<String>> {
    let (valid, mut extra): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .partition(|id| validate_task_id(id).is_ok());
    let found = owners(repo, &valid).await?;
    for (id, owner) in valid.into_iter().zip(found) {
        let belongs = match owner {
            Found::Missing => false,
            Found::WrongType(found) => {
                // Reported, and the index entry left alone.
                report.wrong(&keys::record(&id), "string", found);
                true
            }
            Found::Unreadable(_) => true, // reported in the records phase, left alone
            Found::Owner(owner) => match kind {
                IndexKind::Tasks => true,
                IndexKind::Service(s) => &owner.service == s,
                IndexKind::ServiceUser(s, u) => &owner.service == s && &owner.user_id == u,
                IndexKind::User(u) => &owner.user_id == u,
                IndexKind::Users(_) => true,
            },
        };
        if !belongs {
            extra.push(id);
        }
    }
    Ok(extra)
}

async fn check_metadata(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut done = 0;
    let mut pages = scan::KeyPages::new(repo, "task:*:metadata", "hash");
    while let Some(keys) = pages.next().await? {
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| match LayoutKey::parse(k)? {
                LayoutKey::Metadata(id) => Some(id),
                _ => None,
            })
            .collect();
        let keys: Vec<String> = ids.iter().map(|id| keys::record(id)).collect();
        // An empty string is no record: its metadata is an orphan too.
        let held = scan::holds_record(repo.writer().next(), keys)
            .await
            .map_err(|e| repo.backend(e, "checking metadata"))?;
        for (id, held) in ids.iter().zip(held) {
            if !held {
                report.orphan_metadata += 1;
                report.plan(Repair::CleanOrphanMetadata {
                    task_id: id.clone(),
                });
                if options.repair {
                    match repo.handle_task_expired(id).await {
                        Ok(cleanup) if cleanup.removed => report.repaired += 1,
                        Ok(_) => {}
                        // The cleanup checks every key's type before it writes.
                        Err(Error::WrongType { key, expected }) => {
                            note_wrong_type(repo, report, &key, expected).await?
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        done += ids.len() as u64;
        progress(&CheckProgress {
            phase: CheckPhase::Metadata,
            done,
            estimated_total: None,
        });
    }
    Ok(())
}

/// What [`check_user`] does besides looking.
#[derive(Debug, Clone, Default)]
pub struct UserCheckOptions {
    /// Compare with this service's `index:service:{s}:user:{u}` only, instead of every
    /// service the user has such an index in.
    pub service: Option<String>,
    /// Repair `index:user:{u}` (and nothing else): add the missing ids, remove the extra ids
    /// whose record is gone or names another user. See [`check_user`].
    pub repair: bool,
}

/// What [`check_user`] found, with the field names of the DMS frontend's
/// `scripts/redis_index_consistency_check.py` when serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserIndexReport {
    /// The user checked.
    pub user_id: String,
    /// The services compared, sorted.
    pub services: Vec<String>,
    /// Members of `index:user:{u}`.
    pub user_index_count: u64,
    /// Distinct ids in the `index:service:{s}:user:{u}` sets of those services.
    pub service_union_count: u64,
    /// Ids of the services' sets that `index:user:{u}` lacks, in task id order.
    pub missing_in_user_index: Vec<String>,
    /// Ids of `index:user:{u}` that none of the services' sets has, in task id order.
    pub extra_in_user_index: Vec<String>,
    /// With repair: ids added to or removed from `index:user:{u}`; absent without repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<u64>,
}

impl UserIndexReport {
    /// True when `index:user:{u}` holds exactly the services' ids.
    pub fn is_consistent(&self) -> bool {
        self.missing_in_user_index.is_empty() && self.extra_in_user_index.is_empty()
    }
}

/// `pattern` with the glob characters of SCAN's MATCH escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The members of `key`, SSCAN page by page, on the writer. A key of another type is
/// [`Error::WrongType`].
async fn scan_members(
    repo: &RedisTaskRepository,
    key: &str,
    mut each: impl FnMut(Vec<String>) + Send,
) -> Result<()> {
    let mut cursor = "0".to_owned();
    loop {
        // A member that is not UTF-8 is no task id of the layout: the store-wide check
        // reports it.
        let scan::Page {
            next,
            items: members,
            ..
        } = match scan::members_page(repo.writer().next(), key, &cursor).await {
            Ok(page) => page,
            Err(e) if scan::is_wrong_type(&e) => {
                return Err(Error::WrongType {
                    key: key.to_owned(),
                    expected: "set",
                })
            }
            Err(e) => return Err(repo.backend(e, &format!("scanning {key}"))),
        };
        each(members);
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// The consistency check scoped like the DMS frontend's
/// `scripts/redis_index_consistency_check.py`: `index:user:{user_id}` against the union of
/// the `index:service:{s}:user:{user_id}` sets, of every service the user has one in (found
/// with SCAN pages) or of `options.service` only.
///
/// With `options.repair`, only `index:user:{user_id}` is written: the missing ids are added,
/// then every added or extra id is checked against its record by the atomic `unindex.lua`,
/// which removes it when the record is gone or names another user. An extra id whose record
/// names this user stays (its service's index is what lacks it: the store-wide [`check`]
/// repairs that), so a check afterwards may still find it. The index's TTL is set to the
/// configured TTL when the repair created the key, and otherwise only ever raised to it.
/// The report is the one found before the repair.
///
/// Memory holds the ids of this one user (and the service names), never the store.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad user id or service, [`Error::WrongType`] when one of
/// the sets compared has another type, [`Error::Backend`] when Redis fails.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::{check_user, UserCheckOptions};
/// let report = check_user(&repo, "alice", UserCheckOptions::default()).await?;
/// println!("{}", task_state_core::serde_json::to_string(&report).unwrap());
/// # Ok(()) }
/// ```
pub async fn check_user(
    repo: &RedisTaskRepository,
    user_id: &str,
    options: UserCheckOptions,
) -> Result<UserIndexReport> {
    validate_name("user id", user_id)?;
    let services = match &options.service {
        Some(service) => {
            validate_name("service", service)?;
            vec![service.clone()]
        }
        None => {
            let pattern = format!("index:service:*:user:{}", glob_escape(user_id));
            let mut services = std::collections::BTreeSet::new();
            let mut pages = scan::KeyPages::new(repo, &pattern, "set");
            while let Some(keys) = pages.next().await? {
                for key in keys {
                    if let Some(IndexKind::ServiceUser(s, u)) = classify(&key) {
                        if u == user_id {
                            services.insert(s);
                        }
                    }
                }
            }
            services.into_iter().collect()
        }
    };
    let mut union = std::collections::HashSet::new();
    for service in &services {
        let key = keys::service_user_index(service, user_id);
        scan_members(repo, &key, |members| union.extend(members)).await?;
    }
    let user_key = keys::user_index(user_id);
    let mut in_user = std::collections::HashSet::new();
    scan_members(repo, &user_key, |members| in_user.extend(members)).await?;
    let sorted = |ids: Vec<&String>| {
        let mut ids: Vec<String> = ids.into_iter().cloned().collect();
        ids.sort_by(|a, b| compare_task_ids(a, b));
        ids
    };
    let mut report = UserIndexReport {
        user_id: user_id.to_owned(),
        user_index_count: in_user.len() as u64,
        service_union_count: union.len() as u64,
        missing_in_user_index: sorted(union.difference(&in_user).collect()),
        extra_in_user_index: sorted(in_user.difference(&union).collect()),
        services,
        repaired: None,
    };
    if options.repair {
        report.repaired = Some(repair_user_index(repo, &report, &user_key).await?);
    }
    Ok(report)
}

/// What [`check_user`] with `repair` would change in `index:user:{u}`, found from the
/// report of a check without repair and the records it names, without writing anything
/// (`fsck --user U --repair --dry-run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserRepairPlan {
    /// Ids the repair would add: those of the services' sets whose record names this user
    /// (or cannot be read: the repair leaves such an id where it put it).
    pub add: Vec<String>,
    /// Ids the repair would remove: those of `index:user:{u}` alone whose record is gone,
    /// is a key of another type, or names another user.
    pub remove: Vec<String>,
}

/// The changes that [`check_user`] with `repair` would make, for `report` (a check
/// without repair). The repair may do less where a task changes meanwhile: it checks each
/// id against its record again, atomically.
///
/// # Errors
/// [`Error::Backend`] when Redis fails.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::{check_user, plan_user_repair, UserCheckOptions};
/// let report = check_user(&repo, "alice", UserCheckOptions::default()).await?;
/// let plan = plan_user_repair(&repo, &report).await?;
/// println!("would add {:?}, would remove {:?}", plan.add, plan.remove);
/// # Ok(()) }
/// ```
pub async fn plan_user_repair(
    repo: &RedisTaskRepository,
    report: &UserIndexReport,
) -> Result<UserRepairPlan> {
    let user = report.user_id.as_str();
    // An unreadable record cannot be judged: the repair leaves its id as it finds it.
    let stays = |found: &Found| match found {
        Found::Owner(owner) => owner.user_id == user,
        Found::Unreadable(_) => true,
        Found::Missing | Found::WrongType(_) => false,
    };
    let missing = owners(repo, &report.missing_in_user_index).await?;
    let extra = owners(repo, &report.extra_in_user_index).await?;
    Ok(UserRepairPlan {
        add: report
            .missing_in_user_index
            .iter()
            .zip(&missing)
            .filter(|(_, found)| stays(found))
            .map(|(id, _)| id.clone())
            .collect(),
        remove: report
            .extra_in_user_index
            .iter()
            .zip(&extra)
            .filter(|(_, found)| !stays(found))
            .map(|(id, _)| id.clone())
            .collect(),
    })
}

async fn repair_user_index(
    repo: &RedisTaskRepository,
    report: &UserIndexReport,
    user_key: &str,
) -> Result<u64> {
    let client = repo.writer().next().with_options(&scan::resendable());
    let ttl_before: i64 = crate::cluster::redirected(repo, || client.ttl(user_key))
        .await
        .map_err(|e| repo.backend(e, &format!("reading the TTL of {user_key}")))?;
    let mut added = 0u64;
    for page in report.missing_in_user_index.chunks(scan::PAGE) {
        let n: u64 = crate::cluster::redirected(repo, || client.sadd(user_key, page.to_vec()))
            .await
            .map_err(|e| repo.backend(e, &format!("repairing {user_key}")))?;
        added += n;
    }
    let ttl = repo.settings().ttl_seconds();
    let created = ttl_before == -2 && added > 0;
    if created || (ttl_before >= 0 && (ttl_before as u64) < ttl) {
        let _: () = crate::cluster::redirected(repo, || client.expire(user_key, ttl as i64, None))
            .await
            .map_err(|e| repo.backend(e, &format!("setting the TTL of {user_key}")))?;
    }
    // The check of every id against its record, atomic per page: what was just added (a task
    // deleted meanwhile) and what is extra.
    let mut removed = 0u64;
    let mut scratch = CheckReport::default();
    let candidates: Vec<&String> = report
        .missing_in_user_index
        .iter()
        .chain(&report.extra_in_user_index)
        .collect();
    for page in candidates.chunks(scan::PAGE) {
        let mut args = vec!["user".to_owned(), String::new(), report.user_id.clone()];
        args.extend(page.iter().map(|id| (*id).clone()));
        removed += run_script(
            repo,
            &mut scratch,
            &SCRIPTS.unindex,
            (vec![user_key.to_owned()], "set"),
            args,
        )
        .await?;
    }
    if let Some((key, wrong)) = scratch.wrong_type.into_iter().next() {
        return Err(Error::WrongType {
            key,
            expected: wrong.expected,
        });
    }
    Ok(added + removed)
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
