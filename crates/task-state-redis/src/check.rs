//! The consistency check and repair: records against indexes, indexes against records.

use std::collections::BTreeMap;

use fred::prelude::{HashesInterface, KeysInterface, SetsInterface, Value};
use task_state_core::{validate_task_id, Result};

use crate::repository::RedisTaskRepository;
use crate::scan::{self, text};
use crate::scripts::{Script, SCRIPTS};

async fn sscan_page(
    repo: &RedisTaskRepository,
    key: &str,
    cursor: &str,
) -> Result<(String, Vec<String>)> {
    scan::members_page(repo.writer().next(), key, cursor)
        .await
        .map_err(|e| repo.backend(e, &format!("scanning {key}")))
}

/// Records one MGET reads.
const RECORDS_PER_MGET: usize = 100;
/// Unreadable record keys kept as examples in the report.
const EXAMPLES: usize = 20;

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

/// What [`check`] found (and repaired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Records read.
    pub records: u64,
    /// Records that could not be read (their indexes cannot be judged).
    pub unreadable: u64,
    /// Up to 20 unreadable record keys with the reason.
    pub unreadable_examples: Vec<(String, String)>,
    /// Per index key, its missing and extra members; only keys with a difference.
    pub indexes: BTreeMap<String, IndexDiff>,
    /// Records whose metadata hash is missing or names another service or user.
    pub metadata_mismatch: u64,
    /// Metadata hashes without a record (normal for up to 60 s after an expiry).
    pub orphan_metadata: u64,
    /// Fixes applied (index members added or removed, metadata written or cleaned).
    pub repaired: u64,
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

    /// True when nothing is out of place (unreadable records aside).
    pub fn is_consistent(&self) -> bool {
        self.indexes.is_empty() && self.metadata_mismatch == 0 && self.orphan_metadata == 0
    }

    fn diff(&mut self, key: &str) -> &mut IndexDiff {
        self.indexes.entry(key.to_owned()).or_default()
    }
}

#[derive(serde::Deserialize)]
struct Owner {
    service: String,
    user_id: String,
}

/// What an index set holds, read from its key.
enum IndexKind {
    Tasks,
    Service(String),
    ServiceUser(String, String),
    User(String),
    Users(String),
}

fn classify(key: &str) -> Option<IndexKind> {
    let rest = key.strip_prefix("index:")?;
    if rest == "tasks" {
        return Some(IndexKind::Tasks);
    }
    if let Some(user) = rest.strip_prefix("user:") {
        return (!user.contains(':')).then(|| IndexKind::User(user.to_owned()));
    }
    let service_part = rest.strip_prefix("service:")?;
    let parts: Vec<&str> = service_part.split(':').collect();
    match parts.as_slice() {
        [s] => Some(IndexKind::Service((*s).to_owned())),
        [s, "users"] => Some(IndexKind::Users((*s).to_owned())),
        [s, "user", u] => Some(IndexKind::ServiceUser((*s).to_owned(), (*u).to_owned())),
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

/// The owners of `ids`' records: `None` for a missing record, `Err` for an unreadable one.
async fn owners(
    repo: &RedisTaskRepository,
    ids: &[String],
) -> Result<Vec<Option<std::result::Result<Owner, String>>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(RECORDS_PER_MGET) {
        let keys: Vec<String> = chunk.iter().map(|id| format!("task:{id}")).collect();
        let values: Vec<Value> = repo
            .writer()
            .next()
            .mget(keys)
            .await
            .map_err(|e| repo.backend(e, "reading records"))?;
        for value in values {
            let bytes = match &value {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Bytes(b) => b.to_vec(),
                _ => {
                    out.push(None);
                    continue;
                }
            };
            out.push(Some(
                task_state_core::serde_json::from_slice::<Owner>(&bytes).map_err(|e| e.to_string()),
            ));
        }
    }
    Ok(out)
}

async fn run_script(
    repo: &RedisTaskRepository,
    script: &Script,
    keys: Vec<String>,
    args: Vec<String>,
) -> Result<u64> {
    let reply = repo
        .eval_keys(script, keys, args)
        .await
        .map_err(|e| repo.backend(e, &format!("repairing with {}", script.name)))?;
    Ok(match reply {
        Value::Integer(n) => n.max(0) as u64,
        _ => 0,
    })
}

async fn check_records(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let estimated: u64 = repo.writer().next().scard("index:tasks").await.unwrap_or(0);
    // A user missing from a service's user set is one missing member, however many of
    // their tasks show it.
    let mut missing_users = std::collections::HashSet::new();
    let mut pages = scan::KeyPages::new(repo, "task:*", "string");
    while let Some(keys) = pages.next().await? {
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("task:"))
            .filter(|id| validate_task_id(id).is_ok())
            .map(str::to_owned)
            .collect();
        let found = owners(repo, &ids).await?;
        let pipeline = repo.writer().next().pipeline();
        let mut checked = Vec::new();
        for (id, owner) in ids.iter().zip(found) {
            match owner {
                None => {}
                Some(Err(reason)) => {
                    report.unreadable += 1;
                    if report.unreadable_examples.len() < EXAMPLES {
                        report
                            .unreadable_examples
                            .push((format!("task:{id}"), reason));
                    }
                }
                Some(Ok(owner)) => {
                    report.records += 1;
                    let (s, u) = (&owner.service, &owner.user_id);
                    let expected = [
                        ("index:tasks".to_owned(), id.clone()),
                        (format!("index:service:{s}"), id.clone()),
                        (format!("index:service:{s}:users"), u.clone()),
                        (format!("index:service:{s}:user:{u}"), id.clone()),
                        (format!("index:user:{u}"), id.clone()),
                    ];
                    for (key, member) in &expected {
                        let _: () = pipeline
                            .sismember(key.as_str(), member.as_str())
                            .await
                            .map_err(|e| repo.backend(e, "checking indexes"))?;
                    }
                    let _: () = pipeline
                        .hmget(format!("task:{id}:metadata"), vec!["service", "user_id"])
                        .await
                        .map_err(|e| repo.backend(e, "checking metadata"))?;
                    checked.push((id.clone(), owner, expected));
                }
            }
        }
        let answers: Vec<Value> = if checked.is_empty() {
            Vec::new()
        } else {
            pipeline
                .all()
                .await
                .map_err(|e| repo.backend(e, "checking indexes"))?
        };
        let mut answers = answers.into_iter();
        for (id, owner, expected) in checked {
            let mut broken = false;
            for (key, member) in &expected {
                let present = matches!(
                    answers.next(),
                    Some(Value::Integer(1)) | Some(Value::Boolean(true))
                );
                if !present {
                    broken = true;
                    let first = !key.ends_with(":users")
                        || missing_users.insert((key.clone(), member.clone()));
                    if first {
                        report.diff(key).missing += 1;
                    }
                }
            }
            let meta = match answers.next() {
                Some(Value::Array(fields)) => fields.iter().map(text).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            if meta != [Some(owner.service.clone()), Some(owner.user_id.clone())] {
                report.metadata_mismatch += 1;
                broken = true;
            }
            if broken && options.repair {
                let keys = vec![format!("task:{id}"), format!("task:{id}:metadata")];
                report.repaired += run_script(repo, &SCRIPTS.reindex, keys, vec![id]).await?;
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
    let mut pages = scan::KeyPages::new(repo, "index:*", "set");
    while let Some(keys) = pages.next().await? {
        for key in keys {
            let Some(kind) = classify(&key) else { continue };
            let mut set_cursor = "0".to_owned();
            loop {
                let (set_next, members) = sscan_page(repo, &key, &set_cursor).await?;
                done += members.len() as u64;
                let extra = match &kind {
                    IndexKind::Users(service) => {
                        users_without_tasks(repo, service, &members).await?
                    }
                    kind => tasks_not_belonging(repo, kind, &members).await?,
                };
                if !extra.is_empty() {
                    report.diff(&key).extra += extra.len() as u64;
                    if options.repair {
                        let (script, mut args) = match &kind {
                            IndexKind::Users(service) => {
                                (&SCRIPTS.prune, vec![format!("users:{service}")])
                            }
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
                            run_script(repo, script, vec![key.clone()], args).await?;
                    }
                }
                progress(&CheckProgress {
                    phase: CheckPhase::Indexes,
                    done,
                    estimated_total: None,
                });
                set_cursor = set_next;
                if set_cursor == "0" {
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn users_without_tasks(
    repo: &RedisTaskRepository,
    service: &str,
    users: &[String],
) -> Result<Vec<String>> {
    let keys: Vec<String> = users
        .iter()
        .map(|user| format!("index:service:{service}:user:{user}"))
        .collect();
    let counts = scan::per_key(repo.writer().next(), "SCARD", keys)
        .await
        .map_err(|e| repo.backend(e, "checking users"))?;
    Ok(users
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n == 0)
        .map(|(u, _)| u.clone())
        .collect())
}

async fn tasks_not_belonging(
    repo: &RedisTaskRepository,
    kind: &IndexKind,
    ids: &[String],
) -> Result<Vec<String>> {
    let valid: Vec<String> = ids
        .iter()
        .filter(|id| validate_task_id(id).is_ok())
        .cloned()
        .collect();
    let found = owners(repo, &valid).await?;
    let mut extra = Vec::new();
    for (id, owner) in valid.into_iter().zip(found) {
        let belongs = match owner {
            None => false,
            Some(Err(_)) => true, // unreadable: reported in the records phase, left alone
            Some(Ok(owner)) => match kind {
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
            .filter_map(|k| k.strip_prefix("task:")?.strip_suffix(":metadata"))
            .filter(|id| validate_task_id(id).is_ok())
            .map(str::to_owned)
            .collect();
        let keys: Vec<String> = ids.iter().map(|id| format!("task:{id}")).collect();
        let exists = scan::per_key(repo.writer().next(), "EXISTS", keys)
            .await
            .map_err(|e| repo.backend(e, "checking metadata"))?;
        for (id, exists) in ids.iter().zip(exists) {
            if exists == 0 {
                report.orphan_metadata += 1;
                if options.repair {
                    let cleanup = repo.handle_task_expired(id).await?;
                    if cleanup.removed {
                        report.repaired += 1;
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

/// Compile-time guard: the check and the reconciler can be spawned on a multi-threaded
/// runtime (their futures are `Send`).
#[allow(dead_code)]
fn futures_are_send(repo: &RedisTaskRepository) {
    fn send<T: Send>(_: T) {}
    send(check(repo, CheckOptions::default(), |_| {}));
    send(crate::reconcile(repo));
}
