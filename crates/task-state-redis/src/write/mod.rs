//! The optimistic write path (issue 21): the client reads the record, edits its text in
//! Rust ([`edit`]) or takes the record a save gives, and writes it back with the index and
//! metadata writes the script would make (`lua/lib/commit.lua`), guarded so that nothing
//! written in between is overwritten ([`attempt`]): `WATCH`/`MULTI`/`EXEC` on a connection
//! of the crate's own ([`link`], which keeps what it read until the server says it changed,
//! [`tracked`]), or, where asked for, `SET … IFEQ` on Valkey 8.1 and later ([`WritePath`]).
//! A delete reads the owners and removes the keys and index entries under `WATCH` on a link
//! ([`removal`]).
//!
//! The repository asks [`optimistic`] ([`optimistic_store`], [`optimistic_delete`]) first
//! where a mutation would run its script; what it
//! answers is the script's reply (`{'applied', record}`, `{'missing'}`, `{'conflict',
//! status}`), or `None`, and the script runs: after a conflict with another writer (the
//! script, which the server serialises, then makes the write; no attempt is made twice), for
//! whatever the Rust edit does not support (a record that does not decode, a task whose
//! metadata names another owner, a key of the wrong type), and when a read fails (nothing
//! was written: the script meets the same failure and reports it as it always has).

mod attempt;
mod commands;
pub(crate) use commands::Command;
pub(crate) use on_cluster::{
    optimistic_on_record, optimistic_removal_on_record, optimistic_store_on_record, tracked_reads,
};
mod conn;
pub(crate) mod edit;
mod known;
mod link;
mod on_cluster;
mod removal;
mod resp;
mod slot;
mod splice;
mod tracked;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use fred::interfaces::ClientLike;
use fred::prelude::Value;
use fred::types::CustomCommand;
use task_state_core::Result;

use crate::execution::Executor;
use crate::scripts::Script;
use crate::settings::WritePath;
use attempt::{Attempt, Change, Guard};
use conn::Conn;
use edit::Edit;
use known::KnownTasks;
use link::{Links, Login, Target};

/// The write path of one writer pool, settled when its first mutation runs.
struct Path {
    guard: Option<Guard>,
    /// The connections a `WATCH` holds (one edit at a time on each).
    links: Option<Arc<Links>>,
    known: KnownTasks,
}

impl Path {
    fn new(guard: Option<Guard>, links: Option<Links>) -> Self {
        Path {
            guard,
            links: links.map(Arc::new),
            known: KnownTasks::default(),
        }
    }
}

/// The settled path of each writer pool, by the id of its first client: the repositories
/// made from one (clones, [`with_clock`](crate::RedisTaskRepository::with_clock)) share it.
fn paths() -> &'static Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Path>>>> {
    static PATHS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Path>>>>> =
        OnceLock::new();
    PATHS.get_or_init(Default::default)
}

/// The script's reply to `script` with `args` (its common three first: ttl, `updated_at`,
/// reply mode) for task `task_id`, made by the optimistic path; `None` when the script is
/// to run instead.
///
/// # Errors
/// Only of the write itself, as the script's are: a refusal ([`task_state_core::Error::Refused`]),
/// or [`BackendKind::ReplyLost`](task_state_core::BackendKind::ReplyLost) when the
/// connection failed after the write was sent (it may have applied; it is not sent again).
pub(crate) async fn optimistic(
    exec: &Executor,
    script: &Script,
    task_id: &str,
    args: &[String],
) -> Result<Option<Value>> {
    let Some(EditArgs {
        ttl,
        stamp,
        with_record,
        edit,
    }) = EditArgs::of(script, args)
    else {
        return Ok(None);
    };
    let change = Change::Edit { edit: &edit, stamp };
    run(exec, script.name, task_id, ttl, change, |outcome| {
        script_reply(outcome, with_record, task_id, script.name)
    })
    .await
}

/// An editing script's arguments: its common three (ttl, `updated_at`, reply mode), then
/// its own, which make the edit.
struct EditArgs<'a> {
    ttl: &'a str,
    stamp: &'a str,
    with_record: bool,
    edit: Edit<'a>,
}

impl<'a> EditArgs<'a> {
    /// `None` where the optimistic path has no edit for `script`.
    fn of(script: &Script, args: &'a [String]) -> Option<Self> {
        let [ttl, stamp, mode, extra @ ..] = args else {
            return None;
        };
        Some(EditArgs {
            ttl,
            stamp,
            with_record: mode == "record",
            edit: Edit::of(script.name, extra)?,
        })
    }
}

/// The reply of `save.lua` (`OK`, or `EXISTS` for a `create` that found a record) to a save
/// of `text`, a record of `owner`, made by the optimistic path; `None` when the script is
/// to run instead. `ttl` is the script's first argument (seconds).
///
/// # Errors
/// As [`optimistic`]'s.
pub(crate) async fn optimistic_store(
    exec: &Executor,
    task_id: &str,
    ttl: &str,
    text: &str,
    owner: &(String, String),
    create: bool,
) -> Result<Option<Value>> {
    let change = Change::Store {
        text,
        owner,
        create,
    };
    run(
        exec,
        "save",
        task_id,
        ttl,
        change,
        |outcome| match outcome {
            Attempt::Applied(..) => Some(Value::String("OK".into())),
            Attempt::Exists => Some(Value::String("EXISTS".into())),
            other => script_reply(other, false, task_id, "save"),
        },
    )
    .await
}

/// Makes `change` of `task_id` optimistically where the writer pool's path does; the reply
/// is `reply` of the outcome, `None` where the script `script` is to run instead.
async fn run(
    exec: &Executor,
    script: &'static str,
    task_id: &str,
    ttl: &str,
    change: Change<'_>,
    reply: impl FnOnce(Attempt) -> Option<Value>,
) -> Result<Option<Value>> {
    let Ok(ttl_ms) = ttl.parse::<i64>().map(|s| s.saturating_mul(1000)) else {
        return Ok(None);
    };
    let Some(cell) = connected_path(exec).await else {
        return Ok(None);
    };
    let Some(path) = cell.get() else {
        return Ok(None);
    };
    let guess = path.known.owner_of(task_id);
    let request = attempt::Request {
        task_id,
        change,
        ttl_ms,
        owner: guess.as_ref(),
    };
    let started = std::time::Instant::now();
    let Some(outcome) = attempt_on(exec, path, &request).await? else {
        return Ok(None);
    };
    if let Attempt::Applied(_, owner) = &outcome {
        if guess.as_ref() != Some(owner) {
            path.known.note_owner(task_id, owner.clone());
        }
    }
    let reply = reply(outcome);
    if reply.is_some() {
        let span = tracing::Span::current();
        span.record("script", script);
        span.record("elapsed_ms", started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(reply)
}

/// Deletes task `task_id` optimistically where the writer pool's path is `WATCH` on links:
/// `Some` with the script's answer (whether anything was removed), `None` when the script
/// (`remove.lua`) is to run instead.
///
/// # Errors
/// As [`optimistic`]'s.
pub(crate) async fn optimistic_delete(exec: &Executor, task_id: &str) -> Result<Option<bool>> {
    let Some(links) = links_of(exec).await else {
        return Ok(None);
    };
    let Some(mut held) = link_of(exec, &links, || None).await else {
        return Ok(None);
    };
    let mut conn = Conn::Link(&mut held, links.command_timeout());
    match removal::delete(exec, &mut conn, task_id).await? {
        removal::Removal::Done(removed) => Ok(Some(removed)),
        removal::Removal::ToScript(reason) => {
            tracing::debug!(task_id, reason, "the delete is left to the script");
            Ok(None)
        }
    }
}

/// The links of `exec`'s writer pool where its path writes on them and the pool is
/// connected; `None` where the script runs.
async fn links_of(exec: &Executor) -> Option<Arc<Links>> {
    connected_path(exec).await?.get()?.links.clone()
}

/// The settled path of `exec`'s writer pool ([`path_of`]) where the pool is connected;
/// `None` where the script runs (without a connection the script's call reports the
/// mutation as not sent, at once).
async fn connected_path(exec: &Executor) -> Option<Arc<tokio::sync::OnceCell<Path>>> {
    if !exec.writer().next_connected().is_connected() {
        return None;
    }
    path_of(exec).await
}

/// A link of `links` to the server of `exec`'s writer pool; `None` where that pool has no
/// connection or no link can be made (the script runs).
/// `first` makes the first round of the edit's reads, to go out ahead where the edit waits
/// for a link ([`Links::acquire`]).
async fn link_of<'a>(
    exec: &Executor,
    links: &'a Links,
    first: impl FnOnce() -> Option<Vec<Command>>,
) -> Option<link::Held<'a>> {
    let server = exec
        .writer()
        .next_connected()
        .active_connections()
        .into_iter()
        .next()?;
    links.acquire(target(server), first).await.ok()
}

/// Where a link to `server` connects.
fn target(server: fred::types::config::Server) -> Target {
    Target {
        host: server.host.to_string(),
        port: server.port,
        #[cfg(feature = "tls")]
        tls_name: server.tls_server_name.map(|name| name.to_string()),
    }
}

/// One attempt of `request` on a connection of `path`'s guard; `None` where the path has
/// no guard or no connection is up (the script runs).
async fn attempt_on(
    exec: &Executor,
    path: &Path,
    request: &attempt::Request<'_>,
) -> Result<Option<Attempt>> {
    let Some(guard) = path.guard else {
        return Ok(None);
    };
    let outcome = match guard {
        Guard::Watch => {
            let Some(links) = path.links.as_ref() else {
                return Ok(None);
            };
            let first = || Some(attempt::first_round(request, guard, None));
            let Some(mut held) = link_of(exec, links, first).await else {
                return Ok(None);
            };
            let mut conn = Conn::Link(&mut held, links.command_timeout());
            attempt::attempt(exec, &mut conn, request, guard).await?
        }
        Guard::IfEq => {
            let client = exec.writer().next_connected();
            if !client.is_connected() {
                return Ok(None);
            }
            attempt::attempt(exec, &mut Conn::Fred(client), request, guard).await?
        }
    };
    Ok(Some(outcome))
}

/// The script's reply for `outcome` (with the record's text where `with_record`), or
/// `None` when the script is to make the write: after a race, or for a case left to it.
fn script_reply(
    outcome: Attempt,
    with_record: bool,
    task_id: &str,
    script: &'static str,
) -> Option<Value> {
    let reply = slot::strings;
    match outcome {
        // The record as written, shared with the write, not copied.
        Attempt::Applied(text, _) if with_record => Some(Value::Array(vec![
            Value::String("applied".into()),
            Value::String(text),
        ])),
        Attempt::Applied(..) => Some(reply(&["applied", ""])),
        Attempt::Missing => Some(reply(&["missing"])),
        // Only a create meets a record; `optimistic_store` answers it.
        Attempt::Exists => None,
        Attempt::Refused(current) => Some(reply(&["conflict", &current])),
        Attempt::Raced => {
            tracing::debug!(
                task_id,
                script,
                "another writer came between the read and the write: the script runs"
            );
            None
        }
        Attempt::Unsupported(reason) => {
            tracing::debug!(task_id, script, reason, "left to the script");
            None
        }
    }
}

/// The settled path of `exec`'s writer pool; `None` while it cannot be settled (the server
/// did not answer `INFO`, or the connections of [`WritePath::Watch`] could not be made): the
/// script runs, and the next mutation tries again.
async fn path_of(exec: &Executor) -> Option<Arc<tokio::sync::OnceCell<Path>>> {
    let settings = exec.settings();
    if settings.write_path() == WritePath::Script {
        return None;
    }
    let key = exec.writer().clients().first()?.id().to_owned();
    let cell = paths()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    // (Boxed: settling runs once, and its future is large.)
    cell.get_or_try_init(|| Box::pin(settle(exec))).await.ok()?;
    Some(cell)
}

/// Chooses the guard from the setting and the server's version, and connects what it needs.
async fn settle(exec: &Executor) -> std::result::Result<Path, ()> {
    let settings = exec.settings();
    let connect_timeout = settings.connect_timeout();
    tokio::time::timeout(connect_timeout, settle_within(exec))
        .await
        .map_err(|_| ())?
}

async fn settle_within(exec: &Executor) -> std::result::Result<Path, ()> {
    let settings = exec.settings();
    // The scripts, loaded now as a first script call would load them: most mutations no
    // longer run one, and the server takes no `FUNCTION LOAD` when out of memory, where a
    // delete (whose script frees memory) must still run. Beside the mutation, which a
    // stalled server must not keep waiting longer than its own timeouts.
    let loader = exec.clone();
    tokio::spawn(async move {
        if let Err(e) = loader.load_scripts().await {
            tracing::debug!(error = %e, "the scripts were not loaded ahead: they load at first use");
        }
    });
    let cluster = settings.write_url().is_cluster();
    let ifeq = match settings.write_path() {
        WritePath::Script => return Ok(Path::new(None, None)),
        WritePath::Watch | WritePath::Auto => false,
        // On a cluster the record's step alone is optimistic, with `WATCH`.
        WritePath::IfEq => !cluster && has_ifeq(exec).await?,
    };
    if ifeq {
        tracing::info!("mutations write with SET … IFEQ (the server has it)");
        return Ok(Path::new(Some(Guard::IfEq), None));
    }
    let config =
        crate::connection::client_config(settings.write_url(), settings).map_err(|_| ())?;
    // The writer pool's TLS connector (its roots, the CA file of the settings) for the
    // links too.
    #[cfg(feature = "tls")]
    #[allow(unreachable_patterns)]
    let tls = match config.tls.map(|tls| tls.connector) {
        Some(fred::types::config::TlsConnector::Rustls(connector)) => Some(connector),
        Some(_) => return Err(()),
        None => None,
    };
    let login = Login {
        #[cfg(feature = "tls")]
        tls,
        username: config.username,
        password: config.password,
        database: config.database,
        connect_timeout: settings.connect_timeout(),
        command_timeout: settings.command_timeout(),
    };
    let size = links_for(settings.pool_size(), cluster);
    tracing::info!(
        connections = size,
        "mutations write with WATCH/MULTI/EXEC on connections of their own, tracking what they read"
    );
    let links = Links::new(login, size, cluster, settings.kept_records());
    Ok(Path::new(Some(Guard::Watch), Some(links)))
}

/// The connections of the `WATCH` path for a writer pool of `pool_size`: a connection runs
/// one edit at a time, where the writer pool's pipeline many commands, so twice as many on
/// one node. Not more: an edit that waits for one has its first round sent with the `EXEC`
/// of the edit before it ([`Links`]), one write of the client and one read of the server
/// less than on a connection of its own (at 16 in flight on a pool of 4, 8 connections
/// edited 11–26 % more a second than 16 without, in turns; 4 less: docs/benchmarks.md). On a cluster,
/// where they spread over the primaries and carry no edit in line, four times as many.
fn links_for(pool_size: usize, cluster: bool) -> usize {
    pool_size.saturating_mul(if cluster { 4 } else { 2 })
}

/// Whether the writer's server has `SET … IFEQ`: Valkey 8.1 and later (`INFO server`).
async fn has_ifeq(exec: &Executor) -> std::result::Result<bool, ()> {
    let client = exec.writer().next_connected();
    if !client.is_connected() {
        return Err(());
    }
    let info: Value = client
        .custom(
            CustomCommand::new_static("INFO", None::<u16>, false),
            vec!["server"],
        )
        .await
        .map_err(|_| ())?;
    let text = crate::scan::text(&info).unwrap_or_default();
    Ok(valkey_version(&text).is_some_and(|v| v >= (8, 1)))
}

/// Valkey's (major, minor) version in an `INFO server` reply; `None` for Redis.
fn valkey_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("valkey_version:"))?;
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valkey_version_is_read_from_info() {
        let valkey =
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.1.8\r\n";
        assert_eq!(valkey_version(valkey), Some((8, 1)));
        assert_eq!(valkey_version("# Server\r\nredis_version:7.0.15\r\n"), None);
        assert_eq!(valkey_version("valkey_version:x"), None);
    }
}
