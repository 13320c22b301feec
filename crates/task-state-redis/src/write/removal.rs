//! An optimistic delete (`remove.lua` in its `delete` mode): the record's owner read in
//! Rust, and the task's keys and index entries removed under `WATCH` on a link.
//!
//! The script cleans the indexes of the owner the metadata hash names and of the one the
//! record names, and takes a user out of a service's user set when none of their tasks is
//! left in that service. Here the record, its hash and each owner's set of the user's tasks
//! in the service are watched, so what the reads say of them holds at `EXEC`; the other
//! index sets are not (as for the edits): a member removed that another writer added in
//! between is the script's outcome too, had it run after that writer.

use fred::prelude::Value;
use task_state_core::layout::{key_owner, TaskIndexes, TASK_INDEX};
use task_state_core::{RecordHead, Result};

use super::attempt::{self, int};
use super::commands::Command;
use super::conn::Conn;
use super::known::Owner;
use super::transaction::{self, Exec};
use crate::execution::Executor;
use crate::keys;

/// What an optimistic delete did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Removal {
    /// Written: whether a key or an index entry was removed (the script's reply).
    Done(bool),
    /// Another writer changed a watched key between the reads and the write, or the reads
    /// found what is left to the script: nothing written.
    ToScript(&'static str),
}

/// The replies of `commands`, or why the delete is left to the script.
async fn read(
    conn: &mut Conn<'_>,
    commands: Vec<Command>,
) -> std::result::Result<Vec<Value>, Removal> {
    attempt::read(conn, commands)
        .await
        .ok_or(Removal::ToScript("a read failed"))
}

/// Deletes task `id` on `conn` (a link: [`Command::Watch`] holds there).
///
/// # Errors
/// Only of the write, as the script's ([`super::optimistic`]).
pub(super) async fn delete(exec: &Executor, conn: &mut Conn<'_>, id: &str) -> Result<Removal> {
    conn.start();
    // The task's keys and entries go: what the reads say of them is not kept.
    conn.keep_nothing();
    let (writes, counted) = match plan(conn, id).await {
        Ok(planned) => planned,
        Err(removal) => {
            conn.unwatch().await;
            return Ok(removal);
        }
    };
    match transaction::exec(conn, writes).await {
        // The `DEL` and the `SREM`s of the task id come first: what they removed.
        Ok(Exec::Applied(results)) => Ok(Removal::Done(
            results[..counted.min(results.len())]
                .iter()
                .any(|r| int(Some(r)).is_some_and(|n| n > 0)),
        )),
        Ok(Exec::Raced) => Ok(Removal::ToScript("another writer came in between")),
        // Out of memory, the server refuses every command queued in `MULTI` and then `EXEC`
        // (`EXECABORT`): nothing was written, and the script, which may run then (it frees
        // memory), makes the delete.
        Err(refused) if refused.aborted && refused.said("OOM") => {
            Ok(Removal::ToScript("out of memory"))
        }
        Err(refused) => Err(exec.script_error(refused.error, id)),
    }
}

/// A set that holds the task: its key, the member there, and whether it is a service's
/// user set (from which the user goes only when none of their tasks is left).
struct Held {
    key: String,
    member: String,
    users: bool,
}

/// The reads, and the writes that the script would make with how many of them count as
/// removals (the first ones): `DEL` of the record and its hash, `SREM` of the task from the
/// index sets of each owner (`index:tasks` once), of the user from a service's user set where
/// none of their tasks is left in the service; or why the delete is left to the script.
/// Nothing a delete leaves needs a longer life: no TTL is read or extended.
async fn plan(
    conn: &mut Conn<'_>,
    id: &str,
) -> std::result::Result<(Vec<Command>, usize), Removal> {
    let (rkey, mkey) = (keys::record(id), keys::metadata(id));
    let first = vec![
        Command::Watch(vec![rkey.clone(), mkey.clone()]),
        Command::Get(rkey.clone()),
        Command::Hmget(mkey.clone(), vec!["service", "user_id", "layout"]),
    ];
    let replies = read(conn, first).await?;
    let owners = owners(replies.get(1), replies.get(2))?;
    let indexes: Vec<TaskIndexes> = owners
        .iter()
        .map(|(service, user)| TaskIndexes::of(service, user))
        .collect();
    let mut sets = vec![Held {
        key: TASK_INDEX.to_owned(),
        member: id.to_owned(),
        users: false,
    }];
    for (index, (_, user)) in indexes.iter().zip(&owners) {
        for (key, member, users) in [
            (&index.service, id, false),
            (&index.service_users, user.as_str(), true),
            (&index.service_user, id, false),
            (&index.user, id, false),
        ] {
            sets.push(Held {
                key: key.clone(),
                member: member.to_owned(),
                users,
            });
        }
    }
    // Each set read for its type (a key of another type is the script's to report); each
    // owner's set of the user's tasks in the service watched, and its size read.
    let mut reads = Vec::new();
    let watched: Vec<String> = indexes.iter().map(|i| i.service_user.clone()).collect();
    let watching = !watched.is_empty();
    if watching {
        reads.push(Command::Watch(watched));
    }
    for set in &sets {
        reads.push(Command::Scard(set.key.clone()));
    }
    for index in &indexes {
        reads.push(Command::Sismember(
            index.service_user.clone(),
            id.to_owned(),
        ));
    }
    let replies = read(conn, reads).await?;
    let replies = &replies[usize::from(watching)..];
    let (sizes, members) = replies.split_at(sets.len());

    let mut writes = vec![Command::Del(vec![rkey, mkey])];
    for set in sets.iter().filter(|set| !set.users) {
        writes.push(Command::Srem(set.key.clone(), set.member.clone()));
    }
    let counted = writes.len();
    for ((index, (_, user)), member) in indexes.iter().zip(&owners).zip(members) {
        let size = sets
            .iter()
            .position(|set| set.key == index.service_user)
            .and_then(|n| int(sizes.get(n)))
            .ok_or(Removal::ToScript("the user's set"))?;
        let left = size - i64::from(int(Some(member)) == Some(1));
        if left <= 0 {
            writes.push(Command::Srem(index.service_users.clone(), user.clone()));
        }
    }
    Ok((writes, counted))
}

/// The owners whose indexes hold the task, from the replies of `GET` of its record and
/// `HMGET` of its metadata hash: the one the hash names and the one the record names, each
/// once (names that could not be part of a key name no owner).
fn owners(
    record: Option<&Value>,
    fields: Option<&Value>,
) -> std::result::Result<Vec<Owner>, Removal> {
    let Some(Value::Array(fields)) = fields else {
        return Err(Removal::ToScript("HMGET"));
    };
    let text = |n: usize| fields.get(n).and_then(crate::scan::text);
    let named = text(0).zip(text(1)).and_then(|(s, u)| key_owner(&s, &u));
    let recorded = match record {
        Some(Value::Null) | None => None,
        Some(value) => {
            let text = crate::scan::text(value).ok_or(Removal::ToScript("not UTF-8"))?;
            if text.is_empty() {
                None
            } else {
                // The script finds the owner of a record that does not decode in its text.
                let record = RecordHead::from_json(&text)
                    .map_err(|_| Removal::ToScript("a record that does not decode"))?;
                let owner = key_owner(&record.service, &record.user_id)
                    .ok_or(Removal::ToScript("names that cannot be keys"))?;
                Some(owner)
            }
        }
    };
    let mut owners: Vec<Owner> = Vec::with_capacity(2);
    for owner in [named, recorded].into_iter().flatten() {
        if !owners.contains(&owner) {
            owners.push(owner);
        }
    }
    Ok(owners)
}
