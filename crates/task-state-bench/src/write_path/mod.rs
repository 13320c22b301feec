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

/// How far an index set outlives its record (`INDEX_MARGIN_MS` of `lua/lib/layout.lua`).
const INDEX_MARGIN_MS: i64 = 1_000;
/// How far the metadata hash outlives its record (`METADATA_GRACE_MS`).
const METADATA_GRACE_MS: i64 = 60_000;
/// The longest headroom a refreshed TTL gets (`REFRESH_HEADROOM_MAX_MS`).
const REFRESH_HEADROOM_MAX_MS: i64 = 3_600_000;

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

    async fn unwatch(&self, guard: Guard) -> Result<()> {
        if guard == Guard::Watch {
            self.send(vec![command("UNWATCH", Vec::<Value>::new())])
                .await?;
        }
        Ok(())
    }

    /// One attempt of `edit` on task `id` under `guard`.
    ///
    /// # Errors
    /// A server error (the connection's, or a key of the wrong type).
    pub async fn attempt(&self, id: &str, edit: &Edit, guard: Guard) -> Result<Attempt> {
        let (rkey, mkey) = (layout::record_key(id), layout::metadata_key(id));
        let mut reads = Vec::new();
        if guard == Guard::Watch {
            reads.push(command("WATCH", [rkey.as_str(), mkey.as_str()]));
        }
        let saving = matches!(edit, Edit::Save(_));
        // A save does not read the record: only its TTL (never shortened).
        reads.push(command(
            if saving { "EXISTS" } else { "GET" },
            [rkey.as_str()],
        ));
        reads.push(command("PTTL", [rkey.as_str()]));
        reads.push(command(
            "HMGET",
            [mkey.as_str(), "service", "user_id", "layout"],
        ));
        reads.push(command("PTTL", [mkey.as_str()]));
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
        let (meta_service, meta_user, has_layout) = (field(0), field(1), field(2).is_some());

        // The record to write, its owner, and the text it replaces.
        let (old, new, service, user_id) = match edit {
            Edit::Save(record) => (
                None,
                record.to_json(),
                record.service.clone(),
                record.user_id.clone(),
            ),
            _ => {
                let old = match stored.as_ref().and_then(|v| v.as_bytes()) {
                    Some(b) if !b.is_empty() => String::from_utf8(b.to_vec()).ok(),
                    _ => {
                        self.unwatch(guard).await?;
                        return Ok(Attempt::Missing);
                    }
                };
                let Some(old) = old else {
                    self.unwatch(guard).await?;
                    return Ok(Attempt::Unsupported("the record is not UTF-8"));
                };
                let Ok(record) = TaskRecord::from_json(&old) else {
                    self.unwatch(guard).await?;
                    return Ok(Attempt::Unsupported("the record does not decode"));
                };
                if let Edit::Status { from, .. } = edit {
                    if !from.is_empty() && !from.contains(&record.status) {
                        self.unwatch(guard).await?;
                        return Ok(Attempt::Refused(record.status.as_str().to_owned()));
                    }
                }
                let now = TaskTime::now(self.clock.as_ref(), &self.zone);
                let new = match edited(&old, edit, now) {
                    Ok(new) => new,
                    Err(reason) => {
                        self.unwatch(guard).await?;
                        return Ok(Attempt::Unsupported(reason));
                    }
                };
                (Some(old), new, record.service, record.user_id)
            }
        };
        if meta_service.as_deref().is_some_and(|s| s != service)
            || meta_user.as_deref().is_some_and(|u| u != user_id)
        {
            self.unwatch(guard).await?;
            return Ok(Attempt::Unsupported("the task moves to another owner"));
        }

        // The index sets: membership and TTL, as index_plan reads them.
        let indexes = TaskIndexes::of(&service, &user_id);
        let sets = [
            (indexes.tasks.as_str(), id),
            (indexes.service.as_str(), id),
            (indexes.service_users.as_str(), user_id.as_str()),
            (indexes.service_user.as_str(), id),
            (indexes.user.as_str(), id),
        ];
        let ttl = longer_ttl(record_pttl, self.ttl_ms);
        let headroom = if ttl == -1 {
            0
        } else {
            (ttl / 10).min(REFRESH_HEADROOM_MAX_MS)
        };
        let meta_need = if ttl == -1 {
            -1
        } else {
            ttl + METADATA_GRACE_MS
        };
        // Lean: the metadata hash was refreshed with the index sets, by the same rule, in the
        // write that last gave it headroom; while it still covers what it needs, so do they.
        let indexes_fresh = self.lean
            && meta_service.is_some()
            && meta_user.is_some()
            && (meta_pttl == -1 || (meta_need != -1 && meta_pttl >= meta_need));
        let mut writes = Vec::new();
        if !indexes_fresh {
            let mut plan = Vec::new();
            for (key, member) in sets {
                plan.push(command("SISMEMBER", [key, member]));
                plan.push(command("PTTL", [key]));
            }
            let plan = self.send(plan).await?;
            let need = if ttl == -1 { -1 } else { ttl + INDEX_MARGIN_MS };
            for (n, (key, member)) in sets.into_iter().enumerate() {
                if int(plan.get(2 * n).cloned())? != 1 {
                    writes.push(command("SADD", [key, member]));
                }
                let current = int(plan.get(2 * n + 1).cloned())?;
                refresh_ttl(&mut writes, key, current, need, headroom);
            }
        }
        if meta_service.is_none() || meta_user.is_none() {
            writes.push(command(
                "HSET",
                [mkey.as_str(), "service", &service, "user_id", &user_id],
            ));
        }
        if has_layout {
            writes.push(command("HDEL", [mkey.as_str(), "layout"]));
        }
        let meta_need = if ttl == -1 {
            -1
        } else {
            ttl + METADATA_GRACE_MS
        };
        refresh_ttl(&mut writes, &mkey, meta_pttl, meta_need, headroom);

        match guard {
            Guard::Watch => {
                let mut exec = vec![command("MULTI", Vec::<Value>::new())];
                exec.push(set_record(&rkey, new, ttl, None));
                exec.extend(writes);
                exec.push(command("EXEC", Vec::<Value>::new()));
                let replies = self.send(exec).await?;
                match replies.last() {
                    Some(Value::Null) => Ok(Attempt::Raced),
                    Some(Value::Array(_)) => Ok(Attempt::Applied),
                    other => bail!("unexpected EXEC reply {other:?}"),
                }
            }
            Guard::IfEq => {
                let set = match old {
                    // A save overwrites whatever is there, as the script does.
                    None => set_record(&rkey, new, if record_pttl == -2 { ttl } else { -1 }, None),
                    Some(old) => set_record(&rkey, new, -1, Some(old)),
                };
                let applied = self.send(vec![set]).await?;
                if matches!(applied.first(), Some(Value::Null)) {
                    return Ok(Attempt::Raced);
                }
                if ttl != -1 && record_pttl != -2 {
                    writes.insert(
                        0,
                        command("PEXPIRE", [rkey.clone(), ttl.to_string(), "GT".into()]),
                    );
                }
                if !writes.is_empty() {
                    self.send(writes).await?;
                }
                Ok(Attempt::Applied)
            }
        }
    }
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
