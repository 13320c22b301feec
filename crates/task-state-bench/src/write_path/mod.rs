//! Prototypes of the write paths issue 21 compares with today's scripts, written so that they
//! could move into `task-state-redis`: the client reads the record, edits its text in Rust
//! (every byte outside the edited values kept) and writes it back, with the same index and
//! metadata writes the scripts make (`lua/lib/commit.lua`), guarded in one of two ways
//! ([`Guard`]):
//!
//! - [`Guard::Watch`]: `WATCH` the record and its metadata hash, read, then
//!   `MULTI`/`SET`/the index and metadata writes/`EXEC` on the editor's own connection. Any
//!   write to either key in between (an `EXPIRE` included, or the record expiring) aborts the
//!   `EXEC`: the edit is [`Attempt::Raced`] and nothing was written.
//! - [`Guard::IfEq`]: no `WATCH`; the record is written with `SET … IFEQ <the text read>`
//!   (Valkey 8.1), alone, and the index and metadata writes follow only when it applied.
//!   Its TTL is kept (`KEEPTTL`) and extended after with `PEXPIRE … GT`, which never shortens
//!   it, since the TTL read before may be stale by then.
//!
//! What a prototype leaves to the script ([`Attempt::Unsupported`]): a record that does not
//! decode (the script names the cause), a task whose metadata names another owner than the
//! record (a move of index entries), a member given twice. The layout hint of the scripts is
//! dropped (`HDEL`) where there is one, so that a script after an optimistic edit scans the
//! record; a crate that adopted the path would write the hint it makes (`hint.rs`), one
//! `HSET` of some 80 bytes, instead.

#[cfg(test)]
mod tests;
mod text;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::prelude::{Builder, Config, Value};
use fred::types::CustomCommand;
use task_state_core::layout::{self, TaskIndexes};
use task_state_core::{Clock, SystemClock, TaskRecord, TaskStatus, TaskTime, Zone};

use text::edited;

/// How far an index set outlives its record ([`layout::INDEX_MARGIN_MS`]).
const INDEX_MARGIN_MS: i64 = layout::INDEX_MARGIN_MS as i64;
/// How far the metadata hash outlives its record ([`layout::METADATA_GRACE_SECONDS`]).
const METADATA_GRACE_MS: i64 = layout::METADATA_GRACE_SECONDS as i64 * 1_000;
/// The longest headroom a refreshed TTL gets ([`layout::REFRESH_HEADROOM_MAX_MS`]).
const REFRESH_HEADROOM_MAX_MS: i64 = layout::REFRESH_HEADROOM_MAX_MS as i64;

/// One mutation, as the repository's method of the same name takes it.
#[derive(Debug, Clone)]
pub enum Edit {
    /// `save`: the whole record (its owner must be the one the metadata names, if any).
    Save(Box<TaskRecord>),
    /// `set_status` (`from` empty) or `transition`, with an optional log entry.
    Status {
        /// The new status.
        to: TaskStatus,
        /// The statuses the task may be in; empty allows any.
        from: Vec<TaskStatus>,
        /// A log message to append.
        entry: Option<String>,
    },
    /// `append_logs`.
    Append(Vec<String>),
    /// `update_result`: the given fields set, the result's other members kept.
    Result {
        /// The new `pod_status`, or `None` to keep it.
        pod_status: Option<String>,
        /// The new `launcher_output`, or `None` to keep it.
        launcher_output: Option<String>,
    },
    /// `set_jobs`: the ids into `jobs` and/or `active_jobs`, whichever the record has.
    Jobs(Vec<String>),
}

/// How an edit makes sure that nothing changed the record between its read and its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// `WATCH` the record and metadata keys, `MULTI` … `EXEC`.
    Watch,
    /// `SET … IFEQ` the text read (Valkey 8.1 and later).
    IfEq,
}

/// What one attempt of an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Written.
    Applied,
    /// No such task: nothing written.
    Missing,
    /// A transition refused: the task's current status, nothing written.
    Refused(String),
    /// Another writer changed the record (or its metadata) between the read and the write:
    /// nothing written; try again or leave it to the script.
    Raced,
    /// A case the prototype leaves to the script: nothing written.
    Unsupported(&'static str),
}

/// An editor on a connection of its own (a `WATCH` holds for the connection that sent it).
#[derive(Debug)]
pub struct Editor {
    client: Client,
    ttl_ms: i64,
    zone: Zone,
    clock: Arc<dyn Clock>,
    lean: bool,
}

/// A command and its arguments, to be sent in a pipeline.
type Command = (&'static str, Vec<Value>);

fn command(name: &'static str, args: impl IntoIterator<Item = impl Into<Value>>) -> Command {
    (name, args.into_iter().map(Into::into).collect())
}

impl Editor {
    /// Connects to `url`; records are kept `ttl_seconds` (the repository's TTL setting).
    ///
    /// # Errors
    /// When the URL is not valid or the server cannot be reached.
    pub async fn connect(url: &str, ttl_seconds: u64, zone: Zone) -> Result<Self> {
        let client = Builder::from_config(Config::from_url(url)?).build()?;
        client.init().await?;
        let ttl_ms = i64::try_from(ttl_seconds)?.saturating_mul(1000);
        Ok(Editor {
            client,
            ttl_ms,
            zone,
            clock: Arc::new(SystemClock),
            lean: false,
        })
    }

    /// The editor stamping `updated_at` and log entries with `clock`'s time (the system's by
    /// default), as [`RedisTaskRepository::with_clock`](task_state_redis::RedisTaskRepository::with_clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The lean variant: the index sets are neither read nor written while the metadata
    /// hash's TTL shows that the write which last refreshed it (and, in the same
    /// transaction, the sets) did so less than a headroom ago (a tenth of the TTL, at most an
    /// hour). What it trusts: that only this layout's writes, which refresh the hash and the
    /// sets together, touch a task's index entries while its metadata hash exists.
    pub fn lean(mut self, lean: bool) -> Self {
        self.lean = lean;
        self
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }

    /// Sends `commands` in one pipeline and returns their replies, or the first error.
    async fn send(&self, commands: Vec<Command>) -> Result<Vec<Value>> {
        let pipeline = self.client.pipeline();
        for (name, args) in commands {
            let () = pipeline
                .custom(CustomCommand::new_static(name, None::<u16>, false), args)
                .await?;
        }
        pipeline
            .try_all::<Value>()
            .await
            .into_iter()
            .map(|r| r.context("a command of the edit"))
            .collect()
    }

    /// Ends an attempt that writes nothing: releases the `WATCH` of `guard`, if any, and
    /// returns `outcome`.
    async fn give_up(&self, guard: Guard, outcome: Attempt) -> Result<Attempt> {
        if guard == Guard::Watch {
            self.send(vec![command("UNWATCH", Vec::<Value>::new())])
                .await?;
        }
        Ok(outcome)
    }

    /// One attempt of `edit` on task `id` under `guard`.
    ///
    /// # Errors
    /// A server error (the connection's, or a key of the wrong type).
    pub async fn attempt(&self, id: &str, edit: &Edit, guard: Guard) -> Result<Attempt> {
        let (rkey, mkey) = (layout::record_key(id), layout::metadata_key(id));
        let saving = matches!(edit, Edit::Save(_));
        let snapshot = self.read(&rkey, &mkey, saving, guard).await?;
        let change = match self.change(edit, snapshot.stored.as_ref()) {
            Ok(change) => change,
            Err(outcome) => return self.give_up(guard, outcome).await,
        };
        if snapshot.owned_by_another(&change) {
            let outcome = Attempt::Unsupported("the task moves to another owner");
            return self.give_up(guard, outcome).await;
        }
        let ttl = Ttl::of(snapshot.record_pttl, self.ttl_ms);
        let mut writes = self.index_writes(id, &change, &snapshot, ttl).await?;
        metadata_writes(&mut writes, &mkey, &change, &snapshot, ttl);
        match guard {
            Guard::Watch => self.write_watched(&rkey, change.new, ttl, writes).await,
            Guard::IfEq => {
                self.write_if_eq(&rkey, change, snapshot.record_pttl, ttl, writes)
                    .await
            }
        }
    }

    /// The reads of an attempt, in one pipeline after the `WATCH` of `guard` (if any): the
    /// record at `rkey` (for a save only whether it exists: a save does not read the record,
    /// only its TTL, which it never shortens) and its PTTL, then the owner and layout hint
    /// of the metadata hash at `mkey` and its PTTL.
    async fn read(&self, rkey: &str, mkey: &str, saving: bool, guard: Guard) -> Result<Snapshot> {
        let mut reads = Vec::new();
        if guard == Guard::Watch {
            reads.push(command("WATCH", [rkey, mkey]));
        }
        reads.push(command(if saving { "EXISTS" } else { "GET" }, [rkey]));
        reads.push(command("PTTL", [rkey]));
        reads.push(command("HMGET", [mkey, "service", "user_id", "layout"]));
        reads.push(command("PTTL", [mkey]));
        let mut replies = self.send(reads).await?.into_iter();
        if guard == Guard::Watch {
            replies.next();
        }
        let (stored, record_pttl) = (replies.next(), int(replies.next())?);
        let meta = match replies.next() {
            Some(Value::Array(fields)) => fields,
            other => bail!("unexpected HMGET reply {other:?}"),
        };
        let meta_pttl = int(replies.next())?;
        let field = |n: usize| meta.get(n).and_then(|v| v.as_str()).map(|s| s.into_owned());
        Ok(Snapshot {
            stored,
            record_pttl,
            meta_service: field(0),
            meta_user: field(1),
            has_layout: field(2).is_some(),
            meta_pttl,
        })
    }

    /// What `edit` writes over `stored` (the record's `GET` reply), stamped with the clock's
    /// time; or, where it writes nothing, the outcome: no record, a refused transition, or a
    /// record the prototype leaves to the script.
    fn change(&self, edit: &Edit, stored: Option<&Value>) -> Result<Change, Attempt> {
        if let Edit::Save(record) = edit {
            return Ok(Change {
                old: None,
                new: record.to_json(),
                service: record.service.clone(),
                user_id: record.user_id.clone(),
            });
        }
        let old = match stored.and_then(|v| v.as_bytes()) {
            Some(b) if !b.is_empty() => String::from_utf8(b.to_vec())
                .map_err(|_| Attempt::Unsupported("the record is not UTF-8"))?,
            _ => return Err(Attempt::Missing),
        };
        let record = TaskRecord::from_json(&old)
            .map_err(|_| Attempt::Unsupported("the record does not decode"))?;
        if let Edit::Status { from, .. } = edit {
            if !from.is_empty() && !from.contains(&record.status) {
                return Err(Attempt::Refused(record.status.as_str().to_owned()));
            }
        }
        let now = TaskTime::now(self.clock.as_ref(), &self.zone);
        let new = edited(&old, edit, now).map_err(Attempt::Unsupported)?;
        Ok(Change {
            old: Some(old),
            new,
            service: record.service,
            user_id: record.user_id,
        })
    }

    /// The writes that keep the task's five index sets, as `index_plan` of the scripts
    /// reads them: each set gets the task (or, for the service's users, its user) where it
    /// lacks it, and the TTL `ttl` needs. None in the lean variant while the metadata hash
    /// shows the sets fresh ([`Snapshot::indexes_fresh`]).
    async fn index_writes(
        &self,
        id: &str,
        change: &Change,
        snapshot: &Snapshot,
        ttl: Ttl,
    ) -> Result<Vec<Command>> {
        let mut writes = Vec::new();
        if self.lean && snapshot.indexes_fresh(ttl) {
            return Ok(writes);
        }
        let indexes = TaskIndexes::of(&change.service, &change.user_id);
        let sets = [
            (indexes.tasks.as_str(), id),
            (indexes.service.as_str(), id),
            (indexes.service_users.as_str(), change.user_id.as_str()),
            (indexes.service_user.as_str(), id),
            (indexes.user.as_str(), id),
        ];
        let mut plan = Vec::new();
        for (key, member) in sets {
            plan.push(command("SISMEMBER", [key, member]));
            plan.push(command("PTTL", [key]));
        }
        let plan = self.send(plan).await?;
        let need = ttl.need(INDEX_MARGIN_MS);
        for (n, (key, member)) in sets.into_iter().enumerate() {
            if int(plan.get(2 * n).cloned())? != 1 {
                writes.push(command("SADD", [key, member]));
            }
            let current = int(plan.get(2 * n + 1).cloned())?;
            refresh_ttl(&mut writes, key, current, need, ttl.headroom);
        }
        Ok(writes)
    }

    /// Writes the record at `rkey` as `new` (TTL `ttl`) and then `writes`, in `MULTI` …
    /// `EXEC` under the `WATCH` of the reads: [`Attempt::Raced`] where the `EXEC` aborted.
    async fn write_watched(
        &self,
        rkey: &str,
        new: String,
        ttl: Ttl,
        writes: Vec<Command>,
    ) -> Result<Attempt> {
        let mut exec = vec![command("MULTI", Vec::<Value>::new())];
        exec.push(set_record(rkey, new, ttl.record, None));
        exec.extend(writes);
        exec.push(command("EXEC", Vec::<Value>::new()));
        let replies = self.send(exec).await?;
        match replies.last() {
            Some(Value::Null) => Ok(Attempt::Raced),
            Some(Value::Array(_)) => Ok(Attempt::Applied),
            other => bail!("unexpected EXEC reply {other:?}"),
        }
    }

    /// Writes the record at `rkey` alone, `SET … IFEQ` the text read (a save overwrites
    /// whatever is there, as the script does; `record_pttl` is the PTTL read); only where it
    /// applied, then extends its TTL to `ttl` (`PEXPIRE … GT`, which never shortens it) and
    /// sends `writes`. [`Attempt::Raced`] where the `SET` did not apply.
    async fn write_if_eq(
        &self,
        rkey: &str,
        change: Change,
        record_pttl: i64,
        ttl: Ttl,
        mut writes: Vec<Command>,
    ) -> Result<Attempt> {
        let set = match change.old {
            None => {
                let ttl = if record_pttl == -2 { ttl.record } else { -1 };
                set_record(rkey, change.new, ttl, None)
            }
            Some(old) => set_record(rkey, change.new, -1, Some(old)),
        };
        let applied = self.send(vec![set]).await?;
        if matches!(applied.first(), Some(Value::Null)) {
            return Ok(Attempt::Raced);
        }
        if ttl.record != -1 && record_pttl != -2 {
            writes.insert(
                0,
                command(
                    "PEXPIRE",
                    [rkey.to_owned(), ttl.record.to_string(), "GT".into()],
                ),
            );
        }
        if !writes.is_empty() {
            self.send(writes).await?;
        }
        Ok(Attempt::Applied)
    }
}

/// What an attempt read before its edit.
struct Snapshot {
    /// The record's `GET` reply (a save's: `EXISTS`'s).
    stored: Option<Value>,
    /// The record's PTTL (-2: no record, -1: no expiry).
    record_pttl: i64,
    /// The owner's service the metadata hash names, if any.
    meta_service: Option<String>,
    /// The owner's user the metadata hash names, if any.
    meta_user: Option<String>,
    /// Whether the metadata hash holds a layout hint of the scripts.
    has_layout: bool,
    /// The metadata hash's PTTL.
    meta_pttl: i64,
}

impl Snapshot {
    /// Whether the metadata hash names another owner than `change`'s record: a move of index
    /// entries, left to the script.
    fn owned_by_another(&self, change: &Change) -> bool {
        self.meta_service
            .as_deref()
            .is_some_and(|s| s != change.service)
            || self
                .meta_user
                .as_deref()
                .is_some_and(|u| u != change.user_id)
    }

    /// Whether the lean variant may skip the index sets: the metadata hash was refreshed
    /// with them, by the same rule, in the write that last gave it headroom; while it still
    /// covers what it needs under `ttl`, so do they.
    fn indexes_fresh(&self, ttl: Ttl) -> bool {
        let meta_need = ttl.need(METADATA_GRACE_MS);
        self.meta_service.is_some()
            && self.meta_user.is_some()
            && (self.meta_pttl == -1 || (meta_need != -1 && self.meta_pttl >= meta_need))
    }
}

/// What an edit writes: the record's new text, its owner, and the text it replaces (none
/// for a save).
struct Change {
    old: Option<String>,
    new: String,
    service: String,
    user_id: String,
}

/// The TTL a write gives its record, and the headroom its refreshes of the other keys add.
#[derive(Debug, Clone, Copy)]
struct Ttl {
    /// The record's TTL in milliseconds (-1: none).
    record: i64,
    /// A tenth of it, at most [`REFRESH_HEADROOM_MAX_MS`] (0 without expiry).
    headroom: i64,
}

impl Ttl {
    /// The TTL of a record whose PTTL is `record_pttl`, written by an editor keeping records
    /// `ttl_ms`.
    fn of(record_pttl: i64, ttl_ms: i64) -> Self {
        let record = longer_ttl(record_pttl, ttl_ms);
        let headroom = if record == -1 {
            0
        } else {
            (record / 10).min(REFRESH_HEADROOM_MAX_MS)
        };
        Ttl { record, headroom }
    }

    /// What a key outliving the record by `margin` needs (-1: no expiry).
    fn need(self, margin: i64) -> i64 {
        if self.record == -1 {
            -1
        } else {
            self.record + margin
        }
    }
}

/// Pushes onto `writes` what the metadata hash at `mkey` needs: the owner of `change` where
/// it names none, the layout hint dropped, and its TTL refreshed.
fn metadata_writes(
    writes: &mut Vec<Command>,
    mkey: &str,
    change: &Change,
    snapshot: &Snapshot,
    ttl: Ttl,
) {
    if snapshot.meta_service.is_none() || snapshot.meta_user.is_none() {
        writes.push(command(
            "HSET",
            [mkey, "service", &change.service, "user_id", &change.user_id],
        ));
    }
    if snapshot.has_layout {
        writes.push(command("HDEL", [mkey, "layout"]));
    }
    let need = ttl.need(METADATA_GRACE_MS);
    refresh_ttl(writes, mkey, snapshot.meta_pttl, need, ttl.headroom);
}

/// `SET key text`: `PX ttl`, or `KEEPTTL` where `ttl` is -1; `IFEQ old` when given.
fn set_record(key: &str, text: String, ttl: i64, old: Option<String>) -> Command {
    let mut args: Vec<Value> = vec![key.into(), text.into()];
    if let Some(old) = old {
        args.extend(["IFEQ".into(), old.into()]);
    }
    if ttl == -1 {
        args.push("KEEPTTL".into());
    } else {
        args.extend(["PX".into(), ttl.to_string().into()]);
    }
    ("SET", args)
}

/// The TTL a write gives its record: the longer of the current one (PTTL; -1 none) and the
/// target (`longer_ttl` of `lua/lib/layout.lua`).
fn longer_ttl(current: i64, target: i64) -> i64 {
    if current == -1 || target == -1 {
        -1
    } else {
        current.max(target)
    }
}

/// `refresh_ttl` of `lua/lib/layout.lua`: gives `key` (PTTL `current` before the writes) at
/// least `need` plus headroom where it falls short; never shortens.
fn refresh_ttl(writes: &mut Vec<Command>, key: &str, current: i64, need: i64, headroom: i64) {
    if need == -1 {
        if current >= 0 {
            writes.push(command("PERSIST", [key]));
        }
    } else if current == -2 || (current >= 0 && current < need) {
        writes.push(command(
            "PEXPIRE",
            [key.to_owned(), (need + headroom).to_string()],
        ));
    }
}

fn int(value: Option<Value>) -> Result<i64> {
    match value {
        Some(Value::Integer(i)) => Ok(i),
        other => bail!("expected an integer reply, got {other:?}"),
    }
}
