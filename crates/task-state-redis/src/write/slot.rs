//! The record's step of a mutation on a Redis Cluster (`crate::cluster`), made optimistically
//! on a link to the primary of the record's slot: `WATCH`, `GET` and `PTTL` of the record, the
//! new text made in Rust, then `MULTI`/`SET` (or `DEL`)/`EXEC`. What the cluster scripts
//! (`lua/lib/cluster.lua`, `cluster_save.lua`, `cluster_remove.lua`) do with the record
//! alone, answered as they answer, so that the metadata and index writes that follow in
//! their own slots are the same.
//!
//! The metadata hash is in another slot, so, as for the cluster scripts, nothing is read
//! from it here. A key whose slot the link's node no longer serves (`MOVED`, `ASK`, a slot
//! on the move) is left to the script, which follows the cluster's redirections.

use fred::prelude::Value;
use task_state_core::layout::key_owner;
use task_state_core::{RecordHead, Result};

use super::attempt::{self, int};
use super::commands::Command;
use super::conn::Conn;
use super::edit::{edited, Edit};
use super::transaction::{self, Exec};
use crate::execution::Executor;
use crate::keys;

/// What becomes of the record.
pub(super) enum Step<'a> {
    /// An edit of its text, stamping `updated_at` with `stamp` (a JSON string); the reply
    /// carries the new record where `with_record`.
    Edit {
        edit: &'a Edit<'a>,
        stamp: &'a str,
        with_record: bool,
    },
    /// A whole record in place of the one there, if any; with `create`, only where there is
    /// none.
    Store { text: &'a str, create: bool },
    /// The record deleted.
    Remove,
}

/// What the record read says, or why the step is left to the script.
type Outcome<T> = std::result::Result<T, &'static str>;

/// The reads of the follow-up of a step, given the step's reply, in the follow-up's order:
/// `Some` for those that the step's write carries (its keys served by the record's primary).
pub(super) type Carry<'a> = &'a (dyn Fn(&Value) -> Vec<Option<Command>> + Send + Sync);

/// A step made: the script's reply, and the replies of the follow-up reads its write carried
/// (in [`Carry`]'s order, `None` where a read was not carried or failed).
pub(crate) struct Stepped {
    /// The cluster script's reply.
    pub(crate) reply: Value,
    /// The replies of the carried reads.
    pub(crate) carried: Vec<Option<Value>>,
}

/// The reply of the cluster script for `step` of task `id` on `conn`, a link to the primary
/// of the record's slot, with the replies of the follow-up reads that `carry` names for that
/// reply, sent after the write in its round trip; `None` when the script is to make the step
/// (another writer came in between, or the record is one the scripts handle: a record that
/// does not decode, or a key of another type).
///
/// # Errors
/// Only of the write, as the script's (see [`super::optimistic`]).
pub(super) async fn step(
    exec: &Executor,
    conn: &mut Conn<'_>,
    id: &str,
    (step, carry): (&Step<'_>, Carry<'_>),
    ttl_ms: i64,
) -> Result<Option<Stepped>> {
    conn.start();
    let key = keys::record(id);
    let mut reads = vec![Command::Watch(vec![key.clone()]), Command::Get(key.clone())];
    // A delete has no TTL to keep.
    if !matches!(step, Step::Remove) {
        reads.push(Command::Pttl(key.clone()));
    }
    let planned = match attempt::read(conn, reads).await {
        Some(replies) => plan(step, &key, &replies[1..], ttl_ms),
        None => Err("a read failed"),
    };
    let (write, reply) = match planned {
        Ok(Planned::Write(write, reply)) => (write, reply),
        Ok(Planned::Answer(reply)) => {
            conn.unwatch().await;
            return Ok(Some(Stepped {
                reply,
                carried: Vec::new(),
            }));
        }
        Err(reason) => {
            conn.unwatch().await;
            tracing::debug!(task_id = id, reason, "left to the cluster script");
            return Ok(None);
        }
    };
    let wanted = carry(&reply);
    let (places, reads): (Vec<usize>, Vec<Command>) = wanted
        .into_iter()
        .enumerate()
        .filter_map(|(n, read)| Some((n, read?)))
        .unzip();
    match transaction::exec_then(conn, vec![write], reads).await {
        Ok((Exec::Applied(_), replies)) => {
            let mut carried = vec![None; places.last().map_or(0, |n| n + 1)];
            for (n, reply) in places.into_iter().zip(replies) {
                carried[n] = reply;
            }
            Ok(Some(Stepped { reply, carried }))
        }
        Ok((Exec::Raced, _)) => Ok(None),
        Err(refused) if refused.redirected() => Ok(None),
        Err(refused) => Err(exec.script_error(refused.error, id)),
    }
}

/// What a step does, and the script's reply to it.
enum Planned {
    /// The write, and the reply once it applied.
    Write(Command, Value),
    /// Nothing to write: `{'missing'}` for an edit of no record, `{'conflict', status}` for
    /// a transition refused, `{'EXISTS'}` for a create that found a record, `{0, '', ''}`
    /// for a delete of no record.
    Answer(Value),
}

/// What `step` does, from the replies of `GET` and (but for a delete) `PTTL` of the record
/// `key`.
fn plan(step: &Step<'_>, key: &str, replies: &[Value], ttl_ms: i64) -> Outcome<Planned> {
    let exists = !matches!(replies.first(), Some(Value::Null) | None);
    let old = match replies.first() {
        Some(Value::Null) | None => String::new(),
        Some(value) => crate::scan::text(value).ok_or("not UTF-8")?,
    };
    let ttl = || -> Outcome<i64> {
        let pttl = int(replies.get(1)).ok_or("PTTL")?;
        Ok(crate::ttl::longer(pttl, ttl_ms))
    };
    let set = |text: String, ttl: i64| Command::Set {
        key: key.to_owned(),
        text: text.into(),
        ttl,
        if_equal: None,
    };
    // The scripts' check; they find the owner of a record that does not decode in its text.
    let decoded = || RecordHead::from_json(&old).map_err(|_| "a record that does not decode");
    let owner_of_old = || -> Outcome<(String, String)> {
        if old.is_empty() {
            return Ok((String::new(), String::new()));
        }
        let record = decoded()?;
        Ok((record.service, record.user_id))
    };
    Ok(match step {
        Step::Edit { .. } if old.is_empty() => Planned::Answer(strings(&["missing"])),
        Step::Edit {
            edit,
            stamp,
            with_record,
        } => {
            let record = decoded()?;
            let (service, user) =
                key_owner(&record.service, &record.user_id).ok_or("names that cannot be keys")?;
            if !edit.allows(record.status.as_str()) {
                return Ok(Planned::Answer(strings(&[
                    "conflict",
                    record.status.as_str(),
                ])));
            }
            let new = edited(&old, edit, stamp)?;
            let shown = if *with_record { new.as_str() } else { "" };
            let ttl = ttl()?;
            let reply = strings(&["applied", shown, &service, &user, &ttl.to_string()]);
            Planned::Write(set(new, ttl), reply)
        }
        Step::Store { create: true, .. } if !old.is_empty() => {
            Planned::Answer(strings(&["EXISTS"]))
        }
        Step::Store { text, .. } => {
            let (service, user) = owner_of_old()?;
            let ttl = ttl()?;
            let reply = strings(&["OK", &service, &user, &ttl.to_string()]);
            Planned::Write(set((*text).to_owned(), ttl), reply)
        }
        Step::Remove if !exists => Planned::Answer(removed(0, String::new(), String::new())),
        Step::Remove => {
            // An empty string names no owner; it is deleted all the same.
            let (service, user) = owner_of_old()?;
            Planned::Write(
                Command::Del(vec![key.to_owned()]),
                removed(1, service, user),
            )
        }
    })
}

/// `cluster_remove.lua`'s reply: `{1 when a record was deleted else 0, its service, its user}`.
fn removed(count: i64, service: String, user: String) -> Value {
    Value::Array(vec![
        Value::Integer(count),
        Value::String(service.into()),
        Value::String(user.into()),
    ])
}

/// A reply of strings, as a script gives it.
pub(super) fn strings(items: &[&str]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String((*s).to_owned().into()))
            .collect(),
    )
}
