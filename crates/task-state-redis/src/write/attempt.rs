//! One optimistic attempt of a change of a record (an edit, or a save of a whole record):
//! the reads, the new text, the guarded write.

use fred::bytes_utils::Str;
use fred::prelude::Value;
use task_state_core::layout::{key_owner, TaskIndexes};
use task_state_core::{RecordHead, Result, TaskStatus};

use super::commands::{Command, CACHING_YES};
use super::conn::{Conn, Way};
use super::edit::{edited_at, Edit, Layout};
use super::known::Owner;
use super::tracked::Head;
use super::transaction::{exec_after, Exec};
use crate::execution::Executor;
use crate::keys;
use crate::ttl;

/// How an attempt makes sure that nothing changed the record between its read and its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// `WATCH` the record and metadata keys, `MULTI` … `EXEC`, on a connection of its own.
    Watch,
    /// `SET … IFEQ` the text read (Valkey 8.1 and later).
    IfEq,
}

/// What one attempt did.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Written: the new record, and the owner it names.
    Applied(Str, Owner),
    /// No such task (no key, or an empty string): nothing written.
    Missing,
    /// A create found the record there (a non-empty string): nothing written.
    Exists,
    /// A transition refused: the task's current status, nothing written.
    Refused(String),
    /// Another writer changed the record (or its metadata) between the read and the write:
    /// nothing written.
    Raced,
    /// A case left to the script: nothing written.
    Unsupported(&'static str),
}

/// What becomes of the record.
pub(super) enum Change<'a> {
    /// An edit of its text (a mutation's script), stamping `updated_at` with `stamp` (a
    /// JSON string).
    Edit { edit: &'a Edit<'a>, stamp: &'a str },
    /// A whole record of `owner` in place of the one there, if any (`save.lua`); with
    /// `create`, only where there is none.
    Store {
        text: &'a str,
        owner: &'a Owner,
        create: bool,
    },
}

/// The change to make and what it needs.
pub(super) struct Request<'a> {
    pub(super) task_id: &'a str,
    pub(super) change: Change<'a>,
    /// The TTL setting, in milliseconds.
    pub(super) ttl_ms: i64,
    /// The owner an earlier edit of the task found, if any: a guess that the reads check.
    pub(super) owner: Option<&'a Owner>,
}

/// Every reply of `commands`, or `None` when one failed (a key of the wrong type, a dropped
/// connection): a read that changed nothing, left to the script.
pub(super) async fn read(conn: &mut Conn<'_>, commands: Vec<Command>) -> Option<Vec<Value>> {
    collected(conn.send(commands).await)
}

/// Every reply, or `None` when one failed.
fn collected(replies: Vec<std::result::Result<Value, fred::prelude::Error>>) -> Option<Vec<Value>> {
    replies
        .into_iter()
        .collect::<std::result::Result<_, _>>()
        .ok()
}

pub(super) fn int(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Integer(i)) => Some(*i),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(crate::scan::text)
}

/// One attempt of `request` on `conn` under `guard`.
///
/// # Errors
/// Only of the write (see [`super::optimistic`]).
pub(super) async fn attempt(
    executor: &Executor,
    conn: &mut Conn<'_>,
    request: &Request<'_>,
    guard: Guard,
) -> Result<Attempt> {
    conn.start();
    let outcome = prepare(conn, request, guard).await;
    let (plan, writes) = match outcome {
        Ok(prepared) => prepared,
        Err(outcome) => {
            conn.unwatch().await;
            return Ok(outcome);
        }
    };
    match guard {
        Guard::Watch => write_watched(executor, conn, request, plan, writes).await,
        Guard::IfEq => write_ifeq(executor, conn, request, plan, writes).await,
    }
}

/// What the reads found, for the write.
pub(super) struct Plan {
    old: Str,
    new: Str,
    /// The record's TTL to write (-1: none), and its PTTL read.
    ttl: i64,
    record_pttl: i64,
    /// The owner the record names (its index sets).
    owner: Owner,
    /// The status the new record has, where the change tells it without a decode, and
    /// where its members stand.
    shape: Option<Shape>,
}

/// A record's status and where its members stand.
type Shape = (TaskStatus, Layout);

/// What the first reads found of the record and its metadata hash.
struct Found {
    /// The record's text; empty where there is none (no key, or an empty string).
    old: Str,
    record_pttl: i64,
    meta_service: Option<String>,
    meta_user: Option<String>,
    has_layout: bool,
    meta_pttl: i64,
}

/// The five index sets of a task `id` of `owner`, each with the member the task puts there,
/// in `INDEX_ORDER` of `lua/lib/layout.lua`.
fn index_sets<'a>(
    indexes: &'a TaskIndexes,
    id: &'a str,
    owner: &'a Owner,
) -> [(&'a str, &'a str); 5] {
    [
        (indexes.tasks.as_str(), id),
        (indexes.service.as_str(), id),
        (indexes.service_users.as_str(), owner.1.as_str()),
        (indexes.service_user.as_str(), id),
        (indexes.user.as_str(), id),
    ]
}

/// The reads of `index_plan`: the membership and TTL of each of the task's index sets
/// (`indexes`, those of `owner`).
fn index_reads(id: &str, indexes: &TaskIndexes, owner: &Owner) -> Vec<Command> {
    let mut reads = Vec::with_capacity(10);
    for (key, member) in index_sets(indexes, id, owner) {
        reads.push(Command::Sismember(key.to_owned(), member.to_owned()));
        reads.push(Command::Pttl(key.to_owned()));
    }
    reads
}

/// The reads of the metadata hash `mkey`: the owner and layout hint, and the TTL.
fn metadata_reads(mkey: &str) -> [Command; 2] {
    let fields = vec!["service", "user_id", "layout"];
    [
        Command::Hmget(mkey.to_owned(), fields),
        Command::Pttl(mkey.to_owned()),
    ]
}

/// Where `writes` would change the metadata hash or an index set whose reads came from what
/// a link keeps (a refresh due or a member missing by those reads), reads them again in
/// this attempt, and says so: the writes are then planned from fresh reads, as the script
/// plans its writes.
async fn read_again(
    conn: &mut Conn<'_>,
    writes: &[Command],
    found: &mut Found,
    index: &mut [Value],
    id: &str,
    (indexes, owner): (&TaskIndexes, &Owner),
) -> std::result::Result<bool, Attempt> {
    let stale =
        |key: &str| conn.served(key) && writes.iter().flat_map(Command::written).any(|k| k == key);
    let mkey = keys::metadata(id);
    let sets = index_sets(indexes, id, owner);
    let meta = stale(&mkey);
    let stale_sets: Vec<usize> = (0..sets.len()).filter(|n| stale(sets[*n].0)).collect();
    if !meta && stale_sets.is_empty() {
        return Ok(false);
    }
    let mut reads = Vec::new();
    if meta {
        conn.forget(&mkey);
        reads.extend(metadata_reads(&mkey));
    }
    for n in &stale_sets {
        let (key, member) = sets[*n];
        conn.forget(key);
        reads.push(Command::Sismember(key.to_owned(), member.to_owned()));
        reads.push(Command::Pttl(key.to_owned()));
    }
    let replies = read(conn, reads)
        .await
        .ok_or(Attempt::Unsupported("a read failed"))?;
    let mut rest = &replies[..];
    if meta {
        found.metadata(replies.first(), replies.get(1))?;
        found.owned_by(owner)?;
        rest = &replies[2..];
    }
    for (n, pair) in stale_sets.iter().zip(rest.chunks(2)) {
        index[2 * n..2 * n + 2].clone_from_slice(pair);
    }
    Ok(true)
}

/// The reads and the edit: the plan and the index and metadata writes, or the outcome when
/// nothing is to be written. Where the request guesses the owner (the one an earlier edit
/// of the task found), the index sets are read with the record, in one round trip, and used
/// only when the record names that owner.
async fn prepare(
    conn: &mut Conn<'_>,
    request: &Request<'_>,
    guard: Guard,
) -> std::result::Result<(Plan, Vec<Command>), Attempt> {
    let id = request.task_id;
    let rkey = keys::record(id);
    let first = usize::from(guard == Guard::Watch);
    let guess = request.guess();
    let guessed_indexes = guess.map(|(service, user)| TaskIndexes::of(service, user));
    // The first round's replies came with the link where it went out ahead.
    let replies = match conn.replies_ahead().await {
        Some(replies) => collected(replies),
        None => read(conn, first_round(request, guard, guessed_indexes.as_ref())).await,
    };
    let mut replies = replies.ok_or(Attempt::Unsupported("a read failed"))?;
    let guessed = replies.split_off(first + 4);
    let mut found = found(&replies[first..])?;
    // A text kept is the record's as long as the server tracks the key; one it no longer
    // has would have been told (and read again). Trust neither, should they disagree.
    if found.record_pttl == -2 && conn.served(&rkey) {
        return Err(Attempt::Unsupported(
            "a kept record the server no longer has",
        ));
    }
    let kept = conn.kept_head(&rkey);
    let (owner, new, shape) = match &request.change {
        Change::Edit { edit, stamp } => edited_record(&found, kept, edit, stamp)?,
        Change::Store {
            text,
            owner,
            create,
        } => {
            let (owner, new) = stored_record(&found, text, owner, *create, guard)?;
            (owner, new, None)
        }
    };
    let (indexes, mut index) = match guessed_indexes.filter(|_| guess == Some(&owner)) {
        Some(indexes) => (indexes, guessed),
        None => {
            let indexes = TaskIndexes::of(&owner.0, &owner.1);
            let index = read(conn, index_reads(id, &indexes, &owner))
                .await
                .ok_or(Attempt::Unsupported("an index read failed"))?;
            (indexes, index)
        }
    };
    let ttl = ttl::longer(found.record_pttl, request.ttl_ms);
    let keep_hint = matches!(conn, Conn::Fred(_));
    let whose = (&indexes, &owner);
    let mut writes = writes(id, &found, whose, &new, ttl, &index, keep_hint)?;
    if read_again(conn, &writes, &mut found, &mut index, id, whose).await? {
        writes = self::writes(id, &found, whose, &new, ttl, &index, keep_hint)?;
    }
    let plan = Plan {
        old: found.old,
        new: Str::from(new),
        ttl,
        record_pttl: found.record_pttl,
        owner,
        shape,
    };
    Ok((plan, writes))
}

/// The first round of an attempt's reads: `WATCH` of the record and its metadata hash (under
/// that guard), `GET` and `PTTL` of the record, `HMGET` and `PTTL` of the hash, and, where
/// the owner is known (the one a save writes, or the one an earlier edit found), the reads
/// of its index sets (`indexes`, made from [`Request::guess`] where not given).
pub(super) fn first_round(
    request: &Request<'_>,
    guard: Guard,
    indexes: Option<&TaskIndexes>,
) -> Vec<Command> {
    let id = request.task_id;
    let (rkey, mkey) = (keys::record(id), keys::metadata(id));
    let guess = request.guess();
    let made = guess
        .filter(|_| indexes.is_none())
        .map(|(service, user)| TaskIndexes::of(service, user));
    let indexes = indexes.or(made.as_ref());
    let mut reads = Vec::with_capacity(6 + if guess.is_some() { 10 } else { 0 });
    if guard == Guard::Watch {
        reads.push(Command::Watch(vec![rkey.clone(), mkey.clone()]));
    }
    reads.push(Command::Get(rkey.clone()));
    reads.push(Command::Pttl(rkey));
    reads.extend(metadata_reads(&mkey));
    if let Some((guess, indexes)) = guess.zip(indexes) {
        reads.extend(index_reads(id, indexes, guess));
    }
    reads
}

impl Request<'_> {
    /// The owner known before the reads: the one a save writes, or the one an earlier edit
    /// found.
    pub(super) fn guess(&self) -> Option<&Owner> {
        match &self.change {
            Change::Store { owner, .. } => Some(*owner),
            Change::Edit { .. } => self.owner,
        }
    }
}

/// The replies of `GET`, `PTTL` of the record, `HMGET` and `PTTL` of the metadata hash.
fn found(replies: &[Value]) -> std::result::Result<Found, Attempt> {
    let old = match replies.first() {
        Some(Value::Null) | None => Str::new(),
        // The reply's text as it is, not a copy.
        Some(Value::String(text)) => text.clone(),
        Some(value) => crate::scan::text(value)
            .map(Str::from)
            .ok_or(Attempt::Unsupported("not UTF-8"))?,
    };
    let record_pttl = int(replies.get(1)).ok_or(Attempt::Unsupported("PTTL"))?;
    let mut found = Found {
        old,
        record_pttl,
        meta_service: None,
        meta_user: None,
        has_layout: false,
        meta_pttl: -2,
    };
    found.metadata(replies.get(2), replies.get(3))?;
    Ok(found)
}

impl Found {
    /// Takes the metadata hash's fields from the replies of `HMGET` and `PTTL`.
    fn metadata(
        &mut self,
        fields: Option<&Value>,
        pttl: Option<&Value>,
    ) -> std::result::Result<(), Attempt> {
        let Some(Value::Array(fields)) = fields else {
            return Err(Attempt::Unsupported("HMGET"));
        };
        self.meta_pttl = int(pttl).ok_or(Attempt::Unsupported("PTTL"))?;
        self.meta_service = text(fields.first());
        self.meta_user = text(fields.get(1));
        self.has_layout = !matches!(fields.get(2), Some(Value::Null) | None);
        Ok(())
    }

    /// Nothing to write where the metadata hash names an owner other than `owner`: a move
    /// of index entries, the script's.
    fn owned_by(&self, owner: &Owner) -> std::result::Result<(), Attempt> {
        let named = self
            .meta_service
            .as_deref()
            .zip(self.meta_user.as_deref())
            .and_then(|(s, u)| key_owner(s, u));
        if named.is_some_and(|named| named != *owner) {
            return Err(Attempt::Unsupported("the metadata names another owner"));
        }
        Ok(())
    }
}

/// The record's head, when the record decodes (the scripts' check), and the owner it names;
/// or why nothing is written.
fn decoded(found: &Found) -> std::result::Result<(RecordHead, Owner), Attempt> {
    let record =
        RecordHead::from_json(&found.old).map_err(|_| Attempt::Unsupported("no record"))?;
    let Some(owner) = key_owner(&record.service, &record.user_id) else {
        return Err(Attempt::Unsupported("names that cannot be keys"));
    };
    // A task whose metadata names another owner leaves that owner's indexes: the script's.
    found.owned_by(&owner)?;
    Ok((record, owner))
}

/// The owner the record names, the edited text and its status (where the edit tells it);
/// or why nothing is written. Where the text is one the link wrote and kept with its head
/// (`kept`), the head is not decoded again: the text is what the link's edit made of a
/// record that decoded, and no one wrote the key since.
fn edited_record(
    found: &Found,
    kept: Option<Head>,
    edit: &Edit<'_>,
    stamp: &str,
) -> std::result::Result<(Owner, String, Option<Shape>), Attempt> {
    if found.old.is_empty() {
        return Err(Attempt::Missing);
    }
    let (owner, status, layout) = match kept {
        Some(head) => {
            debug_assert_eq!(
                RecordHead::from_json(&found.old)
                    .ok()
                    .map(|r| ((r.service, r.user_id), r.status)),
                Some((head.owner.clone(), head.status)),
                "a kept head is the head of its text"
            );
            found.owned_by(&head.owner)?;
            (head.owner, head.status, Some(head.layout))
        }
        None => {
            let (record, owner) = decoded(found)?;
            (owner, record.status, None)
        }
    };
    if !edit.allows(status.as_str()) {
        return Err(Attempt::Refused(status.as_str().to_owned()));
    }
    let (new, layout) =
        edited_at(&found.old, layout.as_ref(), edit, stamp).map_err(Attempt::Unsupported)?;
    let status = match edit {
        Edit::Status { to, .. } => task_state_core::serde_json::from_str::<TaskStatus>(to).ok(),
        _ => Some(status),
    };
    Ok((owner, new, status.map(|status| (status, layout))))
}

/// The owner and text of a save of `text`; or why nothing is written. A save that replaces
/// a record of another owner, or whose metadata names another, moves the task's index
/// entries: the script's, as is a save in place of a record that does not decode (the
/// script finds its owner in its text).
fn stored_record(
    found: &Found,
    text: &str,
    owner: &Owner,
    create: bool,
    guard: Guard,
) -> std::result::Result<(Owner, String), Attempt> {
    if found.old.is_empty() {
        found.owned_by(owner)?;
        // `SET … IFEQ` writes only over a value.
        if guard == Guard::IfEq {
            return Err(Attempt::Unsupported("no record to compare"));
        }
    } else {
        if create {
            return Err(Attempt::Exists);
        }
        let (_, old_owner) = decoded(found)?;
        if old_owner != *owner {
            return Err(Attempt::Unsupported("the record names another owner"));
        }
    }
    Ok((owner.clone(), text.to_owned()))
}

/// The index and metadata writes the script's `commit` would make after the record's `SET`
/// of TTL `ttl`, from the replies `index` of [`index_reads`]; `indexes` are `owner`'s (made
/// once an attempt).
fn writes(
    id: &str,
    found: &Found,
    (indexes, owner): (&TaskIndexes, &Owner),
    new: &str,
    ttl: i64,
    index: &[Value],
    keep_hint: bool,
) -> std::result::Result<Vec<Command>, Attempt> {
    let headroom = ttl::headroom(ttl);
    let mut writes = Vec::new();
    let need = ttl::beyond(ttl, ttl::INDEX_MARGIN_MS);
    for (n, (key, member)) in index_sets(indexes, id, owner).into_iter().enumerate() {
        if int(index.get(2 * n)) != Some(1) {
            writes.push(Command::Sadd(key.to_owned(), member.to_owned()));
        }
        let current = int(index.get(2 * n + 1)).ok_or(Attempt::Unsupported("PTTL"))?;
        refresh_ttl(&mut writes, key, current, need, headroom);
    }
    let (service, user_id) = owner;
    let mkey = keys::metadata(id);
    if found.meta_service.as_deref() != Some(service.as_str())
        || found.meta_user.as_deref() != Some(user_id.as_str())
    {
        writes.push(Command::Hset(
            mkey.clone(),
            vec![("service", service.clone()), ("user_id", user_id.clone())],
        ));
    }
    // The layout hint the scripts keep (`lua/lib/hint.lua`): the new one, or none, so that a
    // script finds it where the write path keeps it. A link neither writes nor drops one: a
    // write of the hash would end its tracking (the next edit would read the hash again),
    // and a script trusts a hint only where its SHA1 holds for the record.
    if keep_hint {
        let hint = crate::hint::save_hint(new, service, user_id);
        if !hint.is_empty() {
            writes.push(Command::Hset(mkey.clone(), vec![("layout", hint)]));
        } else if found.has_layout {
            writes.push(Command::Hdel(mkey.clone(), "layout"));
        }
    }
    let meta_need = ttl::beyond(ttl, ttl::METADATA_GRACE_MS);
    refresh_ttl(&mut writes, &mkey, found.meta_pttl, meta_need, headroom);
    Ok(writes)
}

/// `MULTI`, the record's `SET`, `writes`, `EXEC`: all or, when a watched key changed,
/// nothing.
async fn write_watched(
    executor: &Executor,
    conn: &mut Conn<'_>,
    request: &Request<'_>,
    plan: Plan,
    writes: Vec<Command>,
) -> Result<Attempt> {
    let rkey = keys::record(request.task_id);
    let set = Command::Set {
        key: rkey.clone(),
        text: plan.new.clone(),
        ttl: plan.ttl,
        if_equal: None,
    };
    let mut all: Vec<Command> = std::iter::once(set).chain(writes).collect();
    // A text the link keeps: the transaction that writes it starts its tracking again
    // (`CLIENT CACHING YES` holds for the whole of `MULTI` … `EXEC`; the record's `PTTL`
    // after its `SET` is the read the server then tracks, and a command the connections
    // send already), so that any later write by another client is told before the reply of
    // the link's next command.
    let keep = conn.keeps_text(&rkey, plan.new.len());
    let mut before = Vec::new();
    if keep {
        before.push(Command::Other(CACHING_YES.map(str::to_owned).to_vec()));
        all.push(Command::Pttl(rkey.clone()));
    }
    match exec_after(conn, before, all, Vec::new(), Way::Carrying).await {
        Ok((Exec::Applied(results), _)) => {
            if keep && int(results.last()).is_some() {
                let head = plan.shape.map(|(status, layout)| Head {
                    owner: plan.owner.clone(),
                    status,
                    layout,
                });
                conn.keep_text(&rkey, plan.new.clone(), head);
            }
            Ok(Attempt::Applied(plan.new, plan.owner))
        }
        Ok((Exec::Raced, _)) => Ok(Attempt::Raced),
        Err(refused) if refused.redirected() => Ok(Attempt::Unsupported("redirected")),
        Err(refused) => Err(executor.script_error(refused.error, request.task_id)),
    }
}

/// `SET … IFEQ <the text read> KEEPTTL`, then, when it applied, the record's TTL extended
/// (`PEXPIRE … GT`, which never shortens it) and `writes`.
async fn write_ifeq(
    executor: &Executor,
    conn: &mut Conn<'_>,
    request: &Request<'_>,
    plan: Plan,
    mut writes: Vec<Command>,
) -> Result<Attempt> {
    let rkey = keys::record(request.task_id);
    let set = Command::Set {
        key: rkey.clone(),
        text: plan.new.clone(),
        ttl: -1,
        if_equal: Some(plan.old),
    };
    let applied = conn.send(vec![set]).await;
    match applied.into_iter().next() {
        Some(Ok(Value::Null)) => return Ok(Attempt::Raced),
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(executor.script_error(e, request.task_id)),
        None => return Err(task_state_core::Error::backend("no reply to SET IFEQ")),
    }
    if plan.ttl != -1 && plan.record_pttl != -2 {
        writes.insert(
            0,
            Command::Pexpire {
                key: rkey,
                milliseconds: plan.ttl,
                greater: true,
            },
        );
    }
    if !writes.is_empty() {
        if let Some(Err(e)) = conn.send(writes).await.into_iter().find(|r| r.is_err()) {
            return Err(executor.script_error(e, request.task_id));
        }
    }
    Ok(Attempt::Applied(plan.new, plan.owner))
}

/// `refresh_ttl` of `lua/lib/layout.lua`: gives `key` (PTTL `current` before the writes) at
/// least `need` plus headroom where it falls short; never shortens.
fn refresh_ttl(writes: &mut Vec<Command>, key: &str, current: i64, need: i64, headroom: i64) {
    if need == -1 {
        if current >= 0 {
            writes.push(Command::Persist(key.to_owned()));
        }
    } else if current == -2 || (current >= 0 && current < need) {
        writes.push(Command::Pexpire {
            key: key.to_owned(),
            milliseconds: need + headroom,
            greater: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_is_never_shortened() {
        let mut writes = Vec::new();
        refresh_ttl(&mut writes, "k", 10_000, 5_000, 500);
        assert!(writes.is_empty());
        refresh_ttl(&mut writes, "k", 4_000, 5_000, 500);
        refresh_ttl(&mut writes, "n", -1, -1, 0);
        refresh_ttl(&mut writes, "p", 7, -1, 0);
        let expected = [
            Command::Pexpire {
                key: "k".to_owned(),
                milliseconds: 5_500,
                greater: false,
            },
            Command::Persist("p".to_owned()),
        ];
        assert_eq!(writes, expected);
    }
}
