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
//! record; a crate that adopted the path would write the hint it makes (`positions.rs`), one
//! `HSET` of some 80 bytes, instead.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::prelude::{Builder, Config, Value};
use fred::types::CustomCommand;
use serde::Deserialize;
use task_state_core::layout::{self, TaskIndexes};
use task_state_core::serde_json::{self, value::RawValue};
use task_state_core::{
    format_log_entry_at, json_string, Clock, SystemClock, TaskRecord, TaskStatus, TaskTime, Zone,
};

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

/// The members of a record an edit touches, each as the exact text it was read with (a
/// slice of the record: where it stands is where its bytes are).
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    updated_at: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    logs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    jobs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    active_jobs: Option<&'a RawValue>,
}

/// The members of a result an edit sets.
#[derive(Deserialize)]
struct ResultMembers<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pod_status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    launcher_output: Option<&'a RawValue>,
}

/// A member that is there, `null` included (an `Option` alone reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Byte edits of a text: (from, to, replacement), `from == to` inserting.
#[derive(Default)]
struct Splice(Vec<(usize, usize, String)>);

impl Splice {
    /// Replaces the value `raw` (a slice of `text`) with `json`.
    fn replace(&mut self, text: &str, raw: &RawValue, json: String) {
        let from = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        self.0.push((from, from + raw.get().len(), json));
    }

    /// Adds `"name":json` to the object `object` (a slice of `text`) before its `}`.
    fn add_member(&mut self, text: &str, object: &str, name: &str, json: &str) {
        let end = object.as_ptr() as usize - text.as_ptr() as usize + object.len() - 1;
        let empty = object[1..object.len() - 1].trim().is_empty();
        let comma = if empty { "" } else { "," };
        self.0
            .push((end, end, format!("{comma}{}:{json}", json_string(name))));
    }

    fn apply(mut self, text: &str) -> String {
        self.0.sort_by_key(|e| (e.0, e.1));
        let extra: usize = self.0.iter().map(|e| e.2.len()).sum();
        let mut out = String::with_capacity(text.len() + extra);
        let mut at = 0;
        for (from, to, json) in self.0 {
            out.push_str(&text[at..from]);
            out.push_str(&json);
            at = to;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// `text` with `edit` applied at `now`, every other byte kept; the reason where the
/// prototype leaves the edit to the script.
fn edited(text: &str, edit: &Edit, now: TaskTime) -> std::result::Result<String, &'static str> {
    let members: Members<'_> = serde_json::from_str(text).map_err(|_| "a member is given twice")?;
    let whole = text.trim();
    let mut splice = Splice::default();
    let stamp = json_string(&now.to_string());
    let set = |splice: &mut Splice, raw: Option<&RawValue>, name: &str, json: String| match raw {
        Some(raw) => splice.replace(text, raw, json),
        None => splice.add_member(text, whole, name, &json),
    };
    set(&mut splice, members.updated_at, "updated_at", stamp);
    let mut entries = Vec::new();
    match edit {
        Edit::Save(_) => return Err("a save is not an edit"),
        Edit::Status { to, entry, .. } => {
            set(
                &mut splice,
                members.status,
                "status",
                json_string(to.as_str()),
            );
            entries.extend(entry.iter().filter(|m| !m.is_empty()));
        }
        Edit::Append(messages) => entries.extend(messages),
        Edit::Result {
            pod_status,
            launcher_output,
        } => {
            let given = [
                ("pod_status", pod_status),
                ("launcher_output", launcher_output),
            ];
            match members.result.filter(|r| r.get().starts_with('{')) {
                None => {
                    let field =
                        |v: &Option<String>| v.as_deref().map_or("null".to_owned(), json_string);
                    let object = format!(
                        "{{\"pod_status\":{},\"launcher_output\":{}}}",
                        field(pod_status),
                        field(launcher_output)
                    );
                    set(&mut splice, members.result, "result", object);
                }
                Some(result) => {
                    let fields: ResultMembers<'_> = serde_json::from_str(result.get())
                        .map_err(|_| "a member is given twice")?;
                    let found = [fields.pod_status, fields.launcher_output];
                    for ((name, value), raw) in given.into_iter().zip(found) {
                        let Some(value) = value else { continue };
                        match raw {
                            Some(raw) => splice.replace(text, raw, json_string(value)),
                            None => {
                                splice.add_member(text, result.get(), name, &json_string(value))
                            }
                        }
                    }
                }
            }
        }
        Edit::Jobs(ids) => {
            let json = serde_json::to_string(ids).map_err(|_| "job ids")?;
            if members.jobs.is_none() && members.active_jobs.is_none() {
                set(&mut splice, None, "jobs", json);
            } else {
                for (raw, name) in [(members.jobs, "jobs"), (members.active_jobs, "active_jobs")] {
                    if raw.is_some() {
                        set(&mut splice, raw, name, json.clone());
                    }
                }
            }
        }
    }
    if !entries.is_empty() {
        let lines: Vec<String> = entries
            .iter()
            .map(|m| json_string(&format_log_entry_at(m, now)))
            .collect();
        match members.logs.filter(|l| l.get().starts_with('[')) {
            Some(logs) => {
                let inner = &logs.get()[1..logs.get().len() - 1];
                let end =
                    logs.get().as_ptr() as usize - text.as_ptr() as usize + logs.get().len() - 1;
                let comma = if inner.trim().is_empty() { "" } else { "," };
                splice
                    .0
                    .push((end, end, format!("{comma}{}", lines.join(","))));
            }
            other => set(&mut splice, other, "logs", format!("[{}]", lines.join(","))),
        }
    }
    Ok(splice.apply(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> TaskTime {
        crate::fixtures::fixed_time()
    }

    #[test]
    fn an_append_keeps_every_other_byte() {
        let text = r#"{"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a" ],"updated_at":"x","status":"pending"}"#;
        let out = edited(text, &Edit::Append(vec!["m".into()]), now()).unwrap();
        let stamp = json_string(&now().to_string());
        let entry = json_string(&format_log_entry_at("m", now()));
        assert_eq!(
            out,
            format!(
                r#"{{"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a" ,{entry}],"updated_at":{stamp},"status":"pending"}}"#
            )
        );
    }

    #[test]
    fn a_null_result_becomes_an_object_and_a_missing_member_is_added() {
        let text = r#"{"result":null,"logs":[]}"#;
        let edit = Edit::Result {
            pod_status: Some("p".into()),
            launcher_output: None,
        };
        let out = edited(text, &edit, now()).unwrap();
        let stamp = json_string(&now().to_string());
        assert_eq!(
            out,
            format!(
                r#"{{"result":{{"pod_status":"p","launcher_output":null}},"logs":[],"updated_at":{stamp}}}"#
            )
        );
        let text = r#"{"result":{"x":1},"updated_at":"t"}"#;
        let out = edited(text, &edit, now()).unwrap();
        assert_eq!(
            out,
            format!(r#"{{"result":{{"x":1,"pod_status":"p"}},"updated_at":{stamp}}}"#)
        );
    }

    #[test]
    fn a_repeated_member_is_left_to_the_script() {
        let text = r#"{"status":"a","status":"b"}"#;
        let edit = Edit::Jobs(vec![]);
        assert_eq!(edited(text, &edit, now()), Err("a member is given twice"));
    }

    #[test]
    fn jobs_go_where_the_record_keeps_them() {
        let text = r#"{"active_jobs":["a"],"updated_at":"t"}"#;
        let out = edited(text, &Edit::Jobs(vec!["j".into()]), now()).unwrap();
        assert!(
            out.starts_with(r#"{"active_jobs":["j"],"updated_at":"#),
            "{out}"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use task_state_core::serde_json::{json, Map, Value};

        /// Some white space, as another writer may put between tokens.
        fn space() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["", " ", "\n", "\t ", "  "])
        }

        /// A JSON value of another writer, with its exact text.
        fn foreign() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "0.30000000000000004",
                "1E+2",
                "-0",
                "123456789012345678901234567890",
                "\"\\u00e9\\n\"",
                "[1, {\"a\" : null}]",
                "{}",
                "true",
            ])
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let text = "[ -~é\"\\\\]{0,12}";
            prop_oneof![
                prop::collection::vec(text, 1..3).prop_map(Edit::Append),
                (prop::option::of(text)).prop_map(|entry| Edit::Status {
                    to: TaskStatus::Failed,
                    from: Vec::new(),
                    entry,
                }),
                (prop::option::of(text), prop::option::of(text)).prop_map(|(p, l)| {
                    Edit::Result {
                        pod_status: p,
                        launcher_output: l,
                    }
                }),
                prop::collection::vec(text, 0..3).prop_map(Edit::Jobs),
            ]
        }

        /// `edit` on the record as a JSON value, as the scripts apply it.
        fn expected(mut record: Map<String, Value>, edit: &Edit, now: TaskTime) -> Value {
            record.insert("updated_at".into(), json!(now.to_string()));
            let line = |m: &String| json!(format_log_entry_at(m, now));
            match edit {
                Edit::Append(lines) => {
                    let logs = record.entry("logs").or_insert(json!([]));
                    if !logs.is_array() {
                        *logs = json!([]);
                    }
                    let logs = logs.as_array_mut().unwrap();
                    logs.extend(lines.iter().map(line));
                }
                Edit::Status { to, entry, .. } => {
                    record.insert("status".into(), json!(to.as_str()));
                    if let Some(m) = entry.as_ref().filter(|m| !m.is_empty()) {
                        let logs = record.entry("logs").or_insert(json!([]));
                        logs.as_array_mut().unwrap().push(line(m));
                    }
                }
                Edit::Result {
                    pod_status,
                    launcher_output,
                } => {
                    let result = record.entry("result").or_insert(Value::Null);
                    if !result.is_object() {
                        *result = json!({"pod_status": null, "launcher_output": null});
                    }
                    let result = result.as_object_mut().unwrap();
                    for (name, v) in [
                        ("pod_status", pod_status),
                        ("launcher_output", launcher_output),
                    ] {
                        if let Some(v) = v {
                            result.insert(name.into(), json!(v));
                        }
                    }
                }
                Edit::Jobs(ids) => {
                    record.insert("jobs".into(), json!(ids));
                }
                Edit::Save(_) => unreachable!(),
            }
            Value::Object(record)
        }

        proptest! {
            /// Any order of members, any white space, members of another writer: the edit
            /// gives the record the scripts' edit gives, and every member it does not edit
            /// keeps its exact text.
            #[test]
            fn an_edit_keeps_every_byte_it_does_not_change(
                foreign_members in prop::collection::vec((foreign(), space(), space()), 0..3),
                logs in prop::collection::vec("[a-z ]{0,8}", 0..3),
                result_is_object in any::<bool>(),
                edit in edit(),
                order in any::<u64>(),
                gap in space(),
            ) {
                let mut members: Vec<String> = vec![
                    format!("\"status\"{gap}:{gap}\"running\""),
                    format!("\"updated_at\":\"t\""),
                    format!("\"logs\":{}", serde_json::to_string(&logs).unwrap()),
                    format!("\"jobs\":[]"),
                    if result_is_object {
                        format!("\"result\":{{\"pod_status\":null,{gap}\"x\":1}}")
                    } else {
                        "\"result\":null".to_owned()
                    },
                ];
                for (n, (value, before, after)) in foreign_members.iter().enumerate() {
                    members.push(format!("\"x{n}\"{before}:{after}{value}"));
                }
                let mut seed = order;
                for i in (1..members.len()).rev() {
                    members.swap(i, (seed % (i as u64 + 1)) as usize);
                    seed /= i as u64 + 1;
                }
                let text = format!("{{{gap}{}{gap}}}", members.join(&format!("{gap},{gap}")));
                let original: Map<String, Value> = serde_json::from_str(&text).unwrap();
                let out = edited(&text, &edit, now()).unwrap();
                let found: Value = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(found, expected(original, &edit, now()));
                for (n, (value, before, after)) in foreign_members.iter().enumerate() {
                    let member = format!("\"x{n}\"{before}:{after}{value}");
                    prop_assert!(out.contains(&member), "{} lost in {}", member, out);
                }
            }
        }
    }
}
