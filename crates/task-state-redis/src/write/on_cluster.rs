//! What the Redis Cluster path (`crate::cluster`) asks of the write path: the record's step
//! of a mutation made on a link to the record's primary ([`super::slot`]), and the reads of
//! the follow-ups from what the links to each key's primary keep.

use fred::interfaces::ClusterInterface;
use fred::prelude::Value;
use task_state_core::Result;

use super::commands::Command;
use super::conn::Conn;
use super::link::{self, Links};
use super::{attempt, links_of, slot, target, EditArgs};
use crate::execution::Executor;
use crate::scripts::Script;

/// A link of `links` to the primary that serves `key`'s slot, as far as `exec`'s writer
/// pool knows the cluster; `None` where it does not know, or no link can be made.
async fn link_to_key<'a>(exec: &Executor, links: &'a Links, key: &str) -> Option<link::Held<'a>> {
    let routing = exec.writer().next_connected().cached_cluster_state()?;
    let server = routing.get_server(redis_protocol::redis_keyslot(key.as_bytes()))?;
    links.acquire(target(server.clone())).await.ok()
}

/// On a Redis Cluster: the reply of the cluster build of `script` with `args` (`{'applied',
/// record or '', service, user_id, ttl}`, `{'missing'}`, `{'conflict', status}`) for task
/// `task_id`, its record's step made on a link to the record's primary ([`slot`]); `None`
/// when the script is to run instead.
///
/// # Errors
/// As [`optimistic`]'s.
pub(crate) async fn optimistic_on_record(
    exec: &Executor,
    script: &Script,
    task_id: &str,
    args: &[String],
) -> Result<Option<Value>> {
    let Some(args) = EditArgs::of(script, args) else {
        return Ok(None);
    };
    let step = slot::Step::Edit {
        edit: &args.edit,
        stamp: args.stamp,
        with_record: args.with_record,
    };
    on_record(exec, task_id, args.ttl, &step).await
}

/// On a Redis Cluster: the reply of `cluster_save.lua` to a save of `text` (with `create`,
/// only where there is no record) of task `task_id`, made on a link to the record's primary;
/// `None` when the script is to run instead. `ttl` is the script's first argument (seconds).
///
/// # Errors
/// As [`optimistic`]'s.
pub(crate) async fn optimistic_store_on_record(
    exec: &Executor,
    task_id: &str,
    ttl: &str,
    text: &str,
    create: bool,
) -> Result<Option<Value>> {
    let step = slot::Step::Store { text, create };
    on_record(exec, task_id, ttl, &step).await
}

/// On a Redis Cluster: the reply of `cluster_remove.lua` for task `task_id`, its record
/// deleted on a link to the record's primary; `None` when the script is to run instead.
///
/// # Errors
/// As [`optimistic`]'s.
pub(crate) async fn optimistic_removal_on_record(
    exec: &Executor,
    task_id: &str,
) -> Result<Option<Value>> {
    on_record(exec, task_id, "-1", &slot::Step::Remove).await
}

/// On a Redis Cluster: the replies of `reads` (`SISMEMBER`, `PTTL`, `HMGET`, each of one
/// key), each from what the link to its key's primary keeps where the server has not said
/// that the key changed, else from the server. Each primary's link makes a round trip (a
/// `PING` where it keeps every reply): the invalidations that arrived by then are read, so
/// a kept reply holds as if read at that moment. `None` where a link cannot be had or a
/// read fails (a slot that moved, a key of another type).
pub(crate) async fn tracked_reads(exec: &Executor, reads: Vec<Command>) -> Option<Vec<Value>> {
    let links = links_of(exec).await?;
    let routing = exec.writer().next_connected().cached_cluster_state()?;
    let count = reads.len();
    // The reads grouped by primary, each with its place among the replies.
    let mut groups: Vec<(fred::types::config::Server, Vec<(usize, Command)>)> = Vec::new();
    for (n, read) in reads.into_iter().enumerate() {
        let key = read.read_key()?;
        let server = routing.get_server(redis_protocol::redis_keyslot(key.as_bytes()))?;
        match groups.iter_mut().find(|(s, _)| s == server) {
            Some((_, group)) => group.push((n, read)),
            None => groups.push((server.clone(), vec![(n, read)])),
        }
    }
    let mut replies: Vec<Option<Value>> = vec![None; count];
    // One link at a time: a follow-up never holds one while it waits for another.
    for (server, group) in groups {
        let mut held = links.acquire(target(server)).await.ok()?;
        let mut conn = Conn::Link(&mut held, links.command_timeout());
        conn.start();
        let (places, mut commands): (Vec<usize>, Vec<Command>) = group.into_iter().unzip();
        commands.push(Command::Other(vec!["PING".to_owned()]));
        let answers = attempt::read(&mut conn, commands).await?;
        for (place, answer) in places.into_iter().zip(answers) {
            replies[place] = Some(answer);
        }
    }
    replies.into_iter().collect()
}

async fn on_record(
    exec: &Executor,
    task_id: &str,
    ttl: &str,
    step: &slot::Step<'_>,
) -> Result<Option<Value>> {
    let Ok(ttl_ms) = ttl.parse::<i64>().map(|s| s.saturating_mul(1000)) else {
        return Ok(None);
    };
    let Some(links) = links_of(exec).await else {
        return Ok(None);
    };
    let Some(mut held) = link_to_key(exec, &links, &crate::keys::record(task_id)).await else {
        return Ok(None);
    };
    let mut conn = Conn::Link(&mut held, links.command_timeout());
    slot::step(exec, &mut conn, task_id, step, ttl_ms).await
}
