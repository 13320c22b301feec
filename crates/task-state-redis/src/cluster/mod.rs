//! The Redis Cluster path of [`crate::RedisTaskRepository`] (docs/cluster.md): each mutation
//! changes the record alone, in the record's slot (under `WATCH` on its primary, by the
//! write path of `src/write/`, or by its script), then writes the metadata hash and the
//! index sets, each in its own slot, only adding and extending (or, for a move or a delete,
//! removing what no longer belongs): in plain commands ([`plain`]), or with scripts. Deletes
//! and the expiry cleanup remove the record first and the metadata last, and check the
//! record again before that.

mod plain;
mod repair;

pub(crate) use repair::{prune, repair};

use fred::prelude::{ClientLike, Error as FredError, HashesInterface, KeysInterface, Value};
use task_state_core::layout::{self, record_owner, TaskIndexes, TASK_INDEX};
use task_state_core::{validate_name, BackendKind, Error, Result, TaskRecord};

use crate::execution::{Executor, ExpiredCleanup};
use crate::keys;
use crate::scan;
use crate::scripts::{Script, SCRIPTS};

/// A task's owner: its service and user.
type Owner = (String, String);

/// Runs a cluster script with the record key alone.
async fn eval_record(
    exec: &Executor,
    script: &Script,
    task_id: &str,
    args: Vec<String>,
) -> Result<Value> {
    let record = keys::record(task_id);
    exec.exec(script, vec![record.clone()], args)
        .await
        .map_err(|f| {
            f.scripting((&record, "string"), format!("updating task {task_id:?}"))
                .into()
        })
}

/// Runs a follow-up script on `key`, mapping a typed error to its [`Error`].
async fn eval_on(exec: &Executor, script: &Script, key: &str, args: Vec<String>) -> Result<Value> {
    exec.exec(script, vec![key.to_owned()], args)
        .await
        .map_err(|f| f.reading(format!("updating {key}")).into())
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        _ => &[],
    }
}

fn text_at(value: &Value, i: usize) -> String {
    items(value).get(i).and_then(scan::text).unwrap_or_default()
}

fn int_at(value: &Value, i: usize) -> i64 {
    text_at(value, i).parse().unwrap_or(0)
}

/// `Some((service, user))` when both could be part of a key: names that could not (another
/// writer's metadata, say) never build one.
fn owner_of(service: String, user_id: String) -> Option<Owner> {
    layout::key_owner(&service, &user_id)
}

/// The record's step of a single-node editing script (made under `WATCH`, or by the
/// script's cluster build), then its follow-ups when it applied. The reply is the
/// single-node script's (`{'applied', record}`, `{'missing'}`, `{'conflict', status}`).
pub(crate) async fn edit(
    exec: &Executor,
    script: &Script,
    task_id: &str,
    args: Vec<String>,
) -> Result<Value> {
    let cluster = SCRIPTS
        .cluster_variant(script)
        .ok_or_else(|| Error::backend(format!("no cluster build of {}", script.name)))?;
    // Issue 21: the record's step made in Rust on its primary, under `WATCH` (src/write/),
    // its write carrying the follow-up's reads of the keys on that primary.
    let follow = |reply: &Value| match edited_owner(reply) {
        Some(owner) => plain::known_reads(exec, task_id, &owner),
        None => Vec::new(),
    };
    let (reply, carried) = match Box::pin(crate::write::optimistic_on_record(
        exec, script, task_id, &args, &follow,
    ))
    .await?
    {
        Some(stepped) => (stepped.reply, stepped.carried),
        None => (eval_record(exec, cluster, task_id, args).await?, Vec::new()),
    };
    if let Some(owner) = edited_owner(&reply) {
        let reads = Reads::Kept(carried);
        follow_up(exec, reads, task_id, &owner, int_at(&reply, 4), None)
            .await
            .map_err(|e| applied_then(e, task_id))?;
    }
    Ok(reply)
}

/// The owner of the record that an edit's step (`{'applied', record, service, user, ttl}`)
/// applied to, where it applied and the names could be part of a key.
fn edited_owner(reply: &Value) -> Option<Owner> {
    if text_at(reply, 0) != "applied" {
        return None;
    }
    owner_of(text_at(reply, 2), text_at(reply, 3))
}

/// `save` (`mode` `save`) or `create` (`mode` `create`) of a checked record: `Ok(false)`
/// when `create` found the task already there.
pub(crate) async fn store(exec: &Executor, record: &TaskRecord, mode: &str) -> Result<bool> {
    let (ttl, text, id) = (exec.ttl(), record.to_json(), &record.task_id);
    let create = mode == "create";
    let new = (record.service.clone(), record.user_id.clone());
    // A task that had no record has no metadata or index entries to read from what the
    // write path's connections keep: the follow-up writes them at once, its hash without
    // reading it first.
    let fresh = |reply: &Value| text_at(reply, 1).is_empty() && text_at(reply, 2).is_empty();
    let follow = |reply: &Value| {
        if text_at(reply, 0) == "EXISTS" || fresh(reply) {
            return Vec::new();
        }
        plain::known_reads(exec, id, &new)
    };
    let (reply, carried) = match Box::pin(crate::write::optimistic_store_on_record(
        exec, id, &ttl, &text, create, &follow,
    ))
    .await?
    {
        Some(stepped) => (stepped.reply, stepped.carried),
        None => {
            let args = vec![ttl, text, mode.to_owned()];
            let reply = eval_record(exec, &SCRIPTS.cluster_save, id, args).await?;
            (reply, Vec::new())
        }
    };
    if text_at(&reply, 0) == "EXISTS" {
        return Ok(false);
    }
    let reads = if fresh(&reply) {
        Reads::Fresh
    } else {
        Reads::Kept(carried)
    };
    let old = owner_of(text_at(&reply, 1), text_at(&reply, 2));
    follow_up(exec, reads, &record.task_id, &new, int_at(&reply, 3), old)
        .await
        .map_err(|e| applied_then(e, &record.task_id))?;
    Ok(true)
}

/// The error of a follow-up that failed after the record's change applied. Repeating the
/// mutation would apply it twice (a log line written twice), so it is not retryable: it is
/// [`BackendKind::ReplyLost`], whose advice is to read the task back, and its message says
/// that the change applied and what completes the rest.
fn applied_then(error: Error, task_id: &str) -> Error {
    Error::Backend {
        kind: BackendKind::ReplyLost {
            timed_out: error.is_timeout(),
        },
        message: format!(
            "the change of task {task_id} was applied, but updating its metadata and indexes \
             failed ({error}); the task's next mutation or `task-state fsck --repair` completes them"
        ),
        source: Some(Box::new(error)),
    }
}

/// What a follow-up may take as read of a task's metadata hash and index sets.
#[derive(Debug, Clone)]
pub(super) enum Reads {
    /// What the write path's links keep answers the reads it can (an edit; a save in place
    /// of a record), and the record's step carried the replies of some (those of the keys
    /// on the record's primary, in the order of [`plain::known_reads`], `None` for the rest).
    Kept(Vec<Option<Value>>),
    /// Everything is read from the servers (the clean-up of an expired task).
    Server,
    /// The task had no record, so its hash is written without being read first, beside
    /// the index sets' round trip (a save of a new task).
    Fresh,
}

/// Writes the metadata hash and the index sets of a task whose record names `owner` and has
/// the TTL `ttl_ms` (-1: none), and takes the task out of the indexes of any other owner
/// that the metadata hash named or `previous` gives, reading what `reads` says. Returns how
/// many index members and metadata fields it added or corrected.
async fn follow_up(
    exec: &Executor,
    reads: Reads,
    id: &str,
    owner: &Owner,
    ttl_ms: i64,
    previous: Option<Owner>,
) -> Result<u64> {
    let (fixed, named) = match plain::add(exec, reads, id, owner, ttl_ms).await {
        Some(added) => added,
        None => scripted_adds(exec, id, owner, ttl_ms).await?,
    };
    let mut others: Vec<Owner> = Vec::new();
    for other in [owner_of(named.0, named.1), previous].into_iter().flatten() {
        if &other != owner && !others.contains(&other) {
            others.push(other);
        }
    }
    for other in others {
        leave(exec, id, &other, Some(owner)).await?;
    }
    Ok(fixed)
}

/// [`follow_up`]'s additions by the scripts: the metadata hash, then the index sets. Returns
/// how many members and fields they added or corrected, and the owner the hash named.
async fn scripted_adds(
    exec: &Executor,
    id: &str,
    owner: &Owner,
    ttl_ms: i64,
) -> Result<(u64, Owner)> {
    let (service, user_id) = owner;
    let meta = eval_on(
        exec,
        &SCRIPTS.cluster_metadata,
        &keys::metadata(id),
        vec![service.clone(), user_id.clone(), ttl_ms.to_string()],
    )
    .await?;
    let named = (text_at(&meta, 0), text_at(&meta, 1));
    let mut fixed = u64::from(&named != owner);
    let indexes = TaskIndexes::of(service, user_id);
    let ttl = ttl_ms.to_string();
    let adds = indexes
        .task_sets()
        .map(|key| index_op(exec, key, id, Some(&ttl)));
    for added in futures::future::try_join_all(adds).await? {
        fixed += added.0;
    }
    // After the user's own set: the user set never names a user none of whose tasks is listed.
    fixed += index_op(exec, &indexes.service_users, user_id, Some(&ttl))
        .await?
        .0;
    Ok((fixed, named))
}

/// `cluster_index.lua` on one set: adds `member`, the set given at least the record's TTL
/// of `add` (in ms), or without it removes `member` (a removal changes no TTL). Returns (1
/// when it changed the set else 0, the set's size).
async fn index_op(
    exec: &Executor,
    key: &str,
    member: &str,
    add: Option<&str>,
) -> Result<(u64, i64)> {
    let args = match add {
        Some(ttl) => vec!["add".to_owned(), member.to_owned(), ttl.to_owned()],
        None => vec!["remove".to_owned(), member.to_owned()],
    };
    let reply = eval_on(exec, &SCRIPTS.cluster_index, key, args).await?;
    Ok((int_at(&reply, 0).max(0) as u64, int_at(&reply, 1)))
}

/// Takes task `id` out of the indexes of `old` (all four task sets but `index:tasks` when
/// the task moves to `new`, only those that differ), and the old user out of the service's
/// user set when no task of theirs is left there, checked again after the removal; no TTL
/// is read or changed. Returns whether it removed anything.
async fn leave(exec: &Executor, id: &str, old: &Owner, new: Option<&Owner>) -> Result<bool> {
    let (service, user_id) = old;
    let indexes = TaskIndexes::of(service, user_id);
    let service_changed = new.is_none_or(|n| &n.0 != service);
    let user_changed = new.is_none_or(|n| &n.1 != user_id);
    let mut sets = Vec::new();
    if new.is_none() {
        sets.push(indexes.tasks.as_str());
    }
    if service_changed {
        sets.push(indexes.service.as_str());
    }
    if user_changed {
        sets.push(indexes.user.as_str());
    }
    let user_sets = (
        indexes.service_user.as_str(),
        indexes.service_users.as_str(),
        user_id.as_str(),
    );
    if let Some(removed) = plain::leave(exec, id, &sets, user_sets).await {
        return Ok(removed);
    }
    let removals = sets.iter().map(|key| index_op(exec, key, id, None));
    let mut removed = futures::future::try_join_all(removals)
        .await?
        .iter()
        .any(|r| r.0 > 0);
    let (changed, left) = index_op(exec, &indexes.service_user, id, None).await?;
    removed |= changed > 0;
    if left == 0 {
        removed |= index_op(exec, &indexes.service_users, user_id, None)
            .await?
            .0
            > 0;
        put_user_back(exec, &indexes.service_user, &indexes.service_users, user_id).await?;
    }
    Ok(removed)
}

/// After `user` left `users` (the service's user set) because `service_user` (their set of
/// tasks in the service) was empty: a task of theirs added to the service meanwhile puts
/// them back.
async fn put_user_back(exec: &Executor, service_user: &str, users: &str, user: &str) -> Result<()> {
    let again = scan::per_key(exec.writer().next(), "SCARD", [service_user.to_owned()])
        .await
        .map_err(|e| exec.backend(e, "checking users"))?;
    if again.first().copied().unwrap_or(0) > 0 {
        let ttl = exec.ttl_ms().to_string();
        index_op(exec, users, user, Some(&ttl)).await?;
    }
    Ok(())
}

/// The owner that the metadata hash of `id` names.
async fn metadata_owner(exec: &Executor, id: &str) -> Result<Option<Owner>> {
    let key = keys::metadata(id);
    let fields: Vec<Option<String>> = exec
        .redirected(|| exec.writer().next().hmget(&key, vec!["service", "user_id"]))
        .await
        .map_err(|e| exec.read_error(e, &key, "hash"))?;
    let mut fields = fields.into_iter();
    Ok(owner_of(
        fields.next().flatten().unwrap_or_default(),
        fields.next().flatten().unwrap_or_default(),
    ))
}

/// Deletes a task: the record, then its index entries (of the owner the record named and of
/// the one the metadata names), then, unless a save brought the record back meanwhile, the
/// metadata hash.
pub(crate) async fn delete(exec: &Executor, id: &str) -> Result<bool> {
    let named = metadata_owner(exec, id).await?;
    let reply = match Box::pin(crate::write::optimistic_removal_on_record(exec, id)).await? {
        Some(reply) => reply,
        None => eval_record(exec, &SCRIPTS.cluster_remove, id, Vec::new()).await?,
    };
    let mut removed = int_at(&reply, 0) > 0;
    let from_record = owner_of(text_at(&reply, 1), text_at(&reply, 2));
    removed |= clean_indexes(exec, id, [named, from_record]).await?;
    removed |= settle(exec, id).await?;
    Ok(removed)
}

/// The expiry cleanup of a task whose record is gone: its index entries (those the metadata
/// names; `index:tasks` alone without metadata), then the metadata.
pub(crate) async fn handle_expired(exec: &Executor, id: &str) -> Result<ExpiredCleanup> {
    if scan::record_held(exec, id).await? {
        return Ok(ExpiredCleanup {
            record_exists: true,
            removed: false,
            had_metadata: true,
        });
    }
    let named = metadata_owner(exec, id).await?;
    let had_metadata = named.is_some();
    let mut removed = clean_indexes(exec, id, [named, None]).await?;
    removed |= settle(exec, id).await?;
    Ok(ExpiredCleanup {
        record_exists: false,
        removed,
        had_metadata,
    })
}

/// Removes `id` from the indexes of each owner given, or from `index:tasks` alone when none
/// is.
async fn clean_indexes(exec: &Executor, id: &str, owners: [Option<Owner>; 2]) -> Result<bool> {
    let mut removed = false;
    let mut seen: Vec<Owner> = Vec::new();
    for owner in owners.into_iter().flatten() {
        if !seen.contains(&owner) {
            removed |= leave(exec, id, &owner, None).await?;
            seen.push(owner);
        }
    }
    if seen.is_empty() {
        removed |= index_op(exec, TASK_INDEX, id, None).await?.0 > 0;
    }
    Ok(removed)
}

/// The end of a delete or an expiry cleanup: when the record exists again (a save ran
/// meanwhile, and a removal may have undone its follow-ups), its follow-ups run again and
/// the metadata stays; otherwise the metadata hash is deleted. Returns whether it deleted
/// the metadata.
async fn settle(exec: &Executor, id: &str) -> Result<bool> {
    if reindex(exec, id).await?.is_some() {
        return Ok(false);
    }
    let key = keys::metadata(id);
    let deleted: i64 = exec
        .redirected(|| exec.writer().next().del(&key))
        .await
        .map_err(|e| exec.backend(e, &format!("deleting {key}")))?;
    Ok(deleted > 0)
}

/// Puts an existing task back into its indexes and rewrites its metadata from the record
/// (the cluster form of `reindex.lua`). `None` when there is no record, else how many
/// entries and fields it added or corrected. A record that names no owner is an
/// [`Error::Decode`].
pub(crate) async fn reindex(exec: &Executor, id: &str) -> Result<Option<u64>> {
    let key = keys::record(id);
    let client = exec.writer().next();
    let text: Option<String> = exec
        .redirected(|| client.get(&key))
        .await
        .map_err(|e| exec.read_error(e, &key, "string"))?;
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let Some(owner) = record_owner(&text) else {
        return Err(Error::decode(key, "no service or user_id"));
    };
    if validate_name("service", &owner.0)
        .and_then(|()| validate_name("user id", &owner.1))
        .is_err()
    {
        return Err(Error::decode(
            key,
            "service or user_id cannot be part of a key",
        ));
    }
    let ttl: i64 = exec
        .redirected(|| client.pttl(&key))
        .await
        .map_err(|e| exec.backend(e, &format!("reading {key}")))?;
    if ttl == -2 {
        return Ok(None);
    }
    follow_up(exec, Reads::Server, id, &owner, ttl, None)
        .await
        .map(Some)
}

/// The records at `keys`, one `GET` each in one pipeline (fred sends each to the primary of
/// its slot), never a cross-slot `MGET`. A key of another type answers nil, as `MGET` does.
/// Sent again while the cluster redirects it (see [`redirected_on`](crate::execution::redirected_on)).
pub(crate) async fn get_each(
    client: &fred::clients::Client,
    keys: Vec<String>,
) -> std::result::Result<Vec<Value>, FredError> {
    let pipeline = client.pipeline().with_options(&scan::resendable());
    let sent = keys.len();
    for key in keys {
        let _: () = pipeline.get(key).await?;
    }
    if sent == 0 {
        return Ok(Vec::new());
    }
    let answers = scan::try_all(client, &pipeline).await?;
    let mut values = Vec::with_capacity(sent);
    for answer in answers {
        match answer {
            Ok(value) => values.push(value),
            Err(e) if scan::is_wrong_type(&e) => values.push(Value::Null),
            Err(e) => return Err(e),
        }
    }
    if values.len() != sent {
        return Err(FredError::new(
            fred::error::ErrorKind::Protocol,
            "answers missing",
        ));
    }
    Ok(values)
}

/// A configuration for each node of the cluster that answers now (primaries and replicas,
/// from `CLUSTER NODES`): `config`'s credentials and TLS, on that one server. For the
/// expiry listener, whose events are node-local.
pub(crate) async fn node_configs(
    exec: &Executor,
    config: &fred::prelude::Config,
) -> Result<Vec<fred::prelude::Config>> {
    use fred::prelude::{ClusterInterface, Server, ServerConfig};
    let nodes: String = exec
        .writer()
        .next()
        .cluster_nodes()
        .await
        .map_err(|e| exec.backend(e, "reading CLUSTER NODES"))?;
    let mut configs = Vec::new();
    for line in nodes.lines() {
        let mut parts = line.split_whitespace();
        let (Some(_id), Some(address), Some(flags)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if flags
            .split(',')
            .any(|f| matches!(f, "fail" | "noaddr" | "handshake"))
        {
            continue;
        }
        let address = address.split('@').next().unwrap_or(address);
        let Some((host, port)) = address.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let mut node = config.clone();
        node.server = ServerConfig::Centralized {
            server: Server::new(host, port),
        };
        configs.push(node);
    }
    if configs.is_empty() {
        return Err(Error::backend("CLUSTER NODES named no node that answers"));
    }
    Ok(configs)
}
