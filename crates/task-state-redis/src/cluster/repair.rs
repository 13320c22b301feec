//! The consistency check's repairs and the reconciler's pruning on a Redis Cluster, where a
//! set's members and their records are in other slots: the same checks as the single-node
//! scripts (`reindex`, `unindex`, `prune`), made with commands in each key's own slot, and
//! each removal checked again (docs/cluster.md).

use fred::prelude::SetsInterface;
use task_state_core::layout::record_owner;
use task_state_core::{validate_name, validate_task_id, Error, Result};

use super::{get_each, reindex};
use crate::execution::Executor;
use crate::keys;
use crate::scan;

/// The reconciler's pruning of one page of an index set on a cluster, where the records are
/// in other slots: `candidates` are the members found gone (task ids whose record is
/// missing, or, with `service`, users without tasks there). Removes them, checks them
/// again, and puts back those that came back meanwhile. Returns how many stayed removed.
pub(crate) async fn prune(
    exec: &Executor,
    key: &str,
    service: Option<&str>,
    candidates: Vec<String>,
) -> Result<u64> {
    let client = exec.writer().next();
    let gone = match service {
        Some(_) => candidates,
        None => {
            let held = still_there(exec, None, &candidates).await?;
            candidates
                .into_iter()
                .zip(held)
                .filter(|(_, held)| !held)
                .map(|(id, _)| id)
                .collect()
        }
    };
    if gone.is_empty() {
        return Ok(0);
    }
    let removed: i64 = exec
        .redirected(|| client.srem(key, gone.clone()))
        .await
        .map_err(|e| exec.read_error(e, key, "set"))?;
    let again = still_there(exec, service, &gone).await?;
    let back: Vec<String> = gone
        .into_iter()
        .zip(again)
        .filter(|(_, held)| *held)
        .map(|(member, _)| member)
        .collect();
    put_back(exec, key, removed, back).await
}

/// Whether each of `members` of an index set still has what keeps it there: with `service`
/// (members of `index:service:{service}:users`) a task of that user in the service, else a
/// record (an empty string is none). A member that is no valid name has none: no key is
/// built from it.
async fn still_there(
    exec: &Executor,
    service: Option<&str>,
    members: &[String],
) -> Result<Vec<bool>> {
    let client = exec.writer().next();
    let valid: Vec<&String> = members
        .iter()
        .filter(|m| validate_name("name", m).is_ok())
        .collect();
    let keys: Vec<String> = match service {
        Some(service) => valid
            .iter()
            .map(|user| keys::service_user_index(service, user))
            .collect(),
        None => valid.iter().map(|id| keys::record(id)).collect(),
    };
    let held: Vec<bool> = match service {
        Some(_) => scan::per_key(client, "SCARD", keys)
            .await
            .map(|counts| counts.into_iter().map(|n| n > 0).collect()),
        None => scan::holds_record(client, keys).await,
    }
    .map_err(|e| exec.backend(e, "checking records"))?;
    let mut held = held.into_iter();
    Ok(members
        .iter()
        .map(|m| validate_name("name", m).is_ok() && held.next().unwrap_or(true))
        .collect())
}

/// The end of a removal that was checked again: puts `back` (the members removed that
/// belong after all) back into `key`, and returns how many of the `removed` stayed removed.
async fn put_back(exec: &Executor, key: &str, removed: i64, back: Vec<String>) -> Result<u64> {
    if !back.is_empty() {
        let client = exec.writer().next();
        let _: i64 = exec
            .redirected(|| client.sadd(key, back.clone()))
            .await
            .map_err(|e| exec.backend(e, &format!("restoring {key}")))?;
    }
    Ok((removed.max(0) as u64).saturating_sub(back.len() as u64))
}

/// The cluster form of a repair script of the consistency check (`reindex`, `unindex`,
/// `prune`), with the single-node script's keys and arguments: the same checks, made with
/// commands in each key's own slot, and each removal checked again (docs/cluster.md).
pub(crate) async fn repair(
    exec: &Executor,
    script: &str,
    keys: &[String],
    args: Vec<String>,
) -> Result<u64> {
    let key = keys.first().cloned().unwrap_or_default();
    let mut args = args.into_iter();
    match script {
        "reindex" => Ok(reindex(exec, &args.next().unwrap_or_default())
            .await?
            .unwrap_or(0)),
        "prune" => {
            let mode = args.next().unwrap_or_default();
            let service = mode.strip_prefix("users:").map(str::to_owned);
            prune(exec, &key, service.as_deref(), args.collect()).await
        }
        "unindex" => {
            let kind = args.next().unwrap_or_default();
            let service = args.next().unwrap_or_default();
            let user = args.next().unwrap_or_default();
            unindex(exec, &key, &kind, &service, &user, args.collect()).await
        }
        other => Err(Error::backend(format!("no cluster form of {other}"))),
    }
}

/// The ids of `candidates` that do not belong in the index `key` of `kind` (`tasks`,
/// `service`, `service_user`, `user`): no record, or a record of another owner. A record
/// that does not name its owner, or a key of another type, belongs (it is left alone).
async fn not_belonging(
    exec: &Executor,
    kind: &str,
    service: &str,
    user: &str,
    candidates: &[String],
) -> Result<Vec<String>> {
    let client = exec.writer().next();
    // A member that is no task id has no record: no key is built from it.
    let (valid, mut out): (Vec<String>, Vec<String>) = candidates
        .iter()
        .cloned()
        .partition(|id| validate_task_id(id).is_ok());
    let records: Vec<String> = valid.iter().map(|id| keys::record(id)).collect();
    let texts = get_each(client, records.clone())
        .await
        .map_err(|e| exec.backend(e, "reading records"))?;
    let types = scan::types(client, records)
        .await
        .map_err(|e| exec.backend(e, "checking records"))?;
    for ((id, text), kind_found) in valid.iter().zip(texts).zip(types) {
        let empty = scan::text(&text).is_some_and(|t| t.is_empty());
        let belongs = match kind_found.as_str() {
            "none" => false,
            "string" if empty => false, // an empty string is no record
            "string" if kind == "tasks" => true,
            "string" => match scan::text(&text).as_deref().and_then(record_owner) {
                None => true, // cannot tell: leave it
                Some((s, u)) => match kind {
                    "service" => s == service,
                    "service_user" => s == service && u == user,
                    "user" => u == user,
                    _ => true,
                },
            },
            _ => true, // a key of another type: reported, never touched
        };
        if !belongs {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// The cluster form of `unindex.lua`: removes from `key` the ids of `candidates` that do not
/// belong there, then puts back those that belong after all when checked again.
async fn unindex(
    exec: &Executor,
    key: &str,
    kind: &str,
    service: &str,
    user: &str,
    candidates: Vec<String>,
) -> Result<u64> {
    let gone = not_belonging(exec, kind, service, user, &candidates).await?;
    if gone.is_empty() {
        return Ok(0);
    }
    let client = exec.writer().next();
    let removed: i64 = exec
        .redirected(|| client.srem(key, gone.clone()))
        .await
        .map_err(|e| exec.read_error(e, key, "set"))?;
    let still = not_belonging(exec, kind, service, user, &gone).await?;
    let back: Vec<String> = gone.into_iter().filter(|id| !still.contains(id)).collect();
    put_back(exec, key, removed, back).await
}
