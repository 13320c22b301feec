//! What the Redis Cluster path (`crate::cluster`) asks of the write path: the record's step
//! of a mutation made on a link to the record's primary ([`super::slot`]), and the reads of
//! the follow-ups from what the links to each key's primary keep.

use fred::interfaces::ClusterInterface;
use fred::prelude::Value;
use fred::types::cluster::ClusterRouting;
use fred::types::config::Server;
use task_state_core::Result;

use super::commands::Command;
use super::conn::{Conn, Way};
use super::slot::Stepped;
use super::{links_of, slot, target, EditArgs};
use crate::execution::Executor;
use crate::scripts::Script;

/// The primary that serves `key`'s slot, as far as the cluster state `routing` says.
fn primary_of<'a>(routing: &'a ClusterRouting, key: &str) -> Option<&'a Server> {
    routing.get_server(redis_protocol::redis_keyslot(key.as_bytes()))
}

/// The reads of a step's follow-up, given the step's reply (the cluster script's), in the
/// order in which the follow-up makes them: the step's write carries those whose keys its
/// primary serves ([`Stepped::carried`]).
pub(crate) type FollowReads<'a> = &'a (dyn Fn(&Value) -> Vec<Command> + Send + Sync);

/// On a Redis Cluster: the reply of the cluster build of `script` with `args` (`{'applied',
/// record or '', service, user_id, ttl}`, `{'missing'}`, `{'conflict', status}`) for task
/// `task_id`, its record's step made on a link to the record's primary ([`slot`]), which
/// carries the reads of `follow` on that primary; `None` when the script is to run instead.
///
/// # Errors
/// As [`optimistic`](super::optimistic)'s.
pub(crate) async fn optimistic_on_record(
    exec: &Executor,
    script: &Script,
    task_id: &str,
    args: &[String],
    follow: FollowReads<'_>,
) -> Result<Option<Stepped>> {
    let Some(args) = EditArgs::of(script, args) else {
        return Ok(None);
    };
    let step = slot::Step::Edit {
        edit: &args.edit,
        stamp: args.stamp,
        with_record: args.with_record,
    };
    on_record(exec, task_id, args.ttl, &step, follow).await
}

/// On a Redis Cluster: the reply of `cluster_save.lua` to a save of `text` (with `create`,
/// only where there is no record) of task `task_id`, made on a link to the record's primary,
/// which carries the reads of `follow` on that primary; `None` when the script is to run
/// instead. `ttl` is the script's first argument (seconds).
///
/// # Errors
/// As [`optimistic`](super::optimistic)'s.
pub(crate) async fn optimistic_store_on_record(
    exec: &Executor,
    task_id: &str,
    ttl: &str,
    text: &str,
    create: bool,
    follow: FollowReads<'_>,
) -> Result<Option<Stepped>> {
    let step = slot::Step::Store { text, create };
    on_record(exec, task_id, ttl, &step, follow).await
}

/// On a Redis Cluster: the reply of `cluster_remove.lua` for task `task_id`, its record
/// deleted on a link to the record's primary; `None` when the script is to run instead.
///
/// # Errors
/// As [`optimistic`](super::optimistic)'s.
pub(crate) async fn optimistic_removal_on_record(
    exec: &Executor,
    task_id: &str,
) -> Result<Option<Value>> {
    let stepped = on_record(exec, task_id, "-1", &slot::Step::Remove, &|_| Vec::new()).await?;
    Ok(stepped.map(|stepped| stepped.reply))
}

/// On a Redis Cluster: the replies of `reads` (`SISMEMBER`, `PTTL`, `HMGET`, each of one
/// key), each from what the link to its key's primary keeps where the server has not said
/// that the key changed, else from the server. Each primary's link makes a round trip (a
/// `PING` where it keeps every reply, [`Way::Synced`]): the invalidations that
/// arrived by then are read, so a kept reply holds as if read at that moment. A read whose
/// reply is in `carried` (at its place: what a record's step carried, [`Stepped::carried`])
/// is not made again. `None` where a link cannot be had or a read fails (a slot that moved,
/// a key of another type).
pub(crate) async fn tracked_reads(
    exec: &Executor,
    reads: Vec<Command>,
    mut carried: Vec<Option<Value>>,
) -> Option<Vec<Value>> {
    let links = links_of(exec).await?;
    let routing = exec.writer().next_connected().cached_cluster_state()?;
    carried.resize(reads.len(), None);
    // The reads not carried grouped by primary, each with its place among the replies.
    let mut groups: Vec<(Server, Vec<(usize, Command)>)> = Vec::new();
    for (n, read) in reads.into_iter().enumerate() {
        if carried[n].is_some() {
            continue;
        }
        let server = primary_of(&routing, read.read_key()?)?;
        match groups.iter_mut().find(|(s, _)| s == server) {
            Some((_, group)) => group.push((n, read)),
            None => groups.push((server.clone(), vec![(n, read)])),
        }
    }
    let mut replies = carried;
    // One link at a time: a follow-up never holds one while it waits for another.
    for (server, group) in groups {
        let mut held = links.acquire(target(server), || None).await.ok()?;
        let mut conn = Conn::Link(&mut held, links.command_timeout());
        conn.start();
        let (places, commands): (Vec<usize>, Vec<Command>) = group.into_iter().unzip();
        let answers = conn.send_as(commands, Way::Synced).await.into_iter();
        let answers = answers.collect::<std::result::Result<Vec<_>, _>>().ok()?;
        for (place, answer) in places.into_iter().zip(answers) {
            replies[place] = Some(answer);
        }
    }
    replies.into_iter().collect()
}

/// `step` of task `task_id` on a link to the record's primary, as far as `exec`'s writer
/// pool knows the cluster, its write carrying the reads of `follow` on that primary; `None`
/// where the pool does not know the primary, no link can be made, or the script is to make
/// the step.
async fn on_record(
    exec: &Executor,
    task_id: &str,
    ttl: &str,
    step: &slot::Step<'_>,
    follow: FollowReads<'_>,
) -> Result<Option<Stepped>> {
    let Ok(ttl_ms) = ttl.parse::<i64>().map(|s| s.saturating_mul(1000)) else {
        return Ok(None);
    };
    let Some(links) = links_of(exec).await else {
        return Ok(None);
    };
    let Some(routing) = exec.writer().next_connected().cached_cluster_state() else {
        return Ok(None);
    };
    let Some(primary) = primary_of(&routing, &crate::keys::record(task_id)) else {
        return Ok(None);
    };
    let Ok(mut held) = links.acquire(target(primary.clone()), || None).await else {
        return Ok(None);
    };
    let carry = |reply: &Value| -> Vec<Option<Command>> {
        let here = |read: &Command| {
            read.read_key()
                .and_then(|key| primary_of(&routing, key))
                .is_some_and(|server| server == primary)
        };
        let reads = follow(reply).into_iter();
        reads.map(|read| here(&read).then_some(read)).collect()
    };
    let mut conn = Conn::Link(&mut held, links.command_timeout());
    slot::step(exec, &mut conn, task_id, (step, &carry), ttl_ms).await
}
