//! The reconciler's sweep: index members whose record is gone, and users without tasks,
//! pruned a page at a time (what expired-key events missed).

use fred::prelude::Value;
use task_state_core::jiff::Timestamp;
use task_state_core::Result;

use crate::check::IndexKind;
use crate::errors::Said;
use crate::execution::Topology;
use crate::keys;
use crate::repository::RedisTaskRepository;
use crate::scan;
use crate::scripts::SCRIPTS;

/// What the reconciler of a [`Janitor`](crate::Janitor) has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Sweeps run.
    pub runs: u64,
    /// Index members removed over all sweeps.
    pub members_removed: u64,
    /// When the last sweep ended.
    pub last_run_at: Option<Timestamp>,
    /// The error of the last sweep; cleared by a sweep that succeeds.
    pub last_error: Option<String>,
}

/// Removes, from every index set of the layout, the ids whose record no longer exists, and
/// from every `index:service:{s}:users` set the users without tasks there: SCAN over
/// `index:*`, then SSCAN and one small atomic script per page of 500 members, so Redis is
/// never blocked for long and no set is held in memory. Returns the number of members
/// removed.
///
/// Only keys of the layout are touched (`index:tasks`, `index:service:{s}`,
/// `index:service:{s}:users`, `index:service:{s}:user:{u}`, `index:user:{u}` with valid
/// names): another application's `index:recent-searches` in the same database is left
/// alone. A key of the wrong type is never touched either: it is logged and skipped (the
/// consistency check reports it).
///
/// # Errors
/// [`Error::Backend`](task_state_core::Error::Backend) (or
/// [`Error::Refused`](task_state_core::Error::Refused)) when Redis fails.
pub async fn reconcile(repo: &RedisTaskRepository) -> Result<u64> {
    let mut removed = 0;
    let mut pages = scan::KeyPages::new(
        repo.exec(),
        keys::scan_pattern(keys::KeyFamily::Indexes),
        "set",
    );
    while let Some(keys) = pages.next().await? {
        for key in keys {
            let Some(kind) = crate::check::classify(&key) else {
                continue; // not a key of the layout
            };
            let service = match kind {
                IndexKind::Users(service) => Some(service),
                _ => None,
            };
            removed += prune_index(repo, &key, service.as_deref()).await?;
        }
    }
    Ok(removed)
}

/// Prunes one index set, SSCAN page by page: for `index:service:{service}:users` (with
/// `service`) the users without tasks there, else the ids without a record.
async fn prune_index(repo: &RedisTaskRepository, key: &str, service: Option<&str>) -> Result<u64> {
    let mode = match service {
        Some(service) => format!("users:{service}"),
        None => "tasks".to_owned(),
    };
    let mut removed = 0;
    let mut cursor = "0".to_owned();
    loop {
        let scan::Page {
            next,
            items: mut members,
            not_utf8,
        } = match scan::members_page(repo.writer().next(), key, &cursor).await {
            Ok(page) => page,
            Err(e) if scan::is_wrong_type(&e) => {
                tracing::warn!(key, "reconciler: key of the wrong type left alone");
                return Ok(removed);
            }
            Err(e) => return Err(repo.exec().backend(e, &format!("scanning {key}"))),
        };
        for member in &not_utf8 {
            // No name of the layout is: the check reports it, an operator decides.
            tracing::warn!(
                key,
                member,
                "reconciler: a member that is not UTF-8 left alone"
            );
        }
        if let Some(service) = service {
            members = users_to_prune(repo, service, members).await?;
        }
        if !members.is_empty() {
            removed += prune_page(repo, key, service, &mode, members).await?;
        }
        if next == "0" {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Removes the `members` of the index set `key` that the reconciler found gone, each
/// checked again before it goes: `prune.lua` in `mode`, or on a cluster, where the records
/// are in other slots, check, remove, check again (docs/cluster.md). Returns how many went.
async fn prune_page(
    repo: &RedisTaskRepository,
    key: &str,
    service: Option<&str>,
    mode: &str,
    members: Vec<String>,
) -> Result<u64> {
    let exec = repo.exec();
    if exec.topology() == Topology::Cluster {
        return crate::cluster::prune(exec, key, service, members).await;
    }
    let mut args = Vec::with_capacity(members.len() + 1);
    args.push(mode.to_owned());
    args.extend(members);
    match exec.exec(&SCRIPTS.prune, vec![key.to_owned()], args).await {
        Ok(Value::Integer(n)) => Ok(n.max(0) as u64),
        Ok(_) => Ok(0),
        // A user index that became a key of another type meanwhile: the script
        // stopped at its SCARD, before any SREM.
        Err(f) if *f.said() == Said::WrongType => {
            tracing::warn!(key, "reconciler: a user index of the wrong type left alone");
            Ok(0)
        }
        Err(f) => Err(f.reading(format!("pruning {key}")).into()),
    }
}

/// The users (of `index:service:{service}:users`) whose task index there is empty, and the
/// members that are no user id, for the script to check again and remove
/// ([`crate::check::users_without_tasks`]); a user whose index has the wrong type is left
/// alone.
async fn users_to_prune(
    repo: &RedisTaskRepository,
    service: &str,
    users: Vec<String>,
) -> Result<Vec<String>> {
    let found = crate::check::users_without_tasks(repo, service, users).await?;
    for key in &found.wrong_type {
        tracing::warn!(
            key = key.as_str(),
            "reconciler: key of the wrong type left alone"
        );
    }
    Ok(found.users)
}
