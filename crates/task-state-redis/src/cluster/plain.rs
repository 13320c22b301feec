//! A follow-up's writes in plain commands where nothing needs more (issue 21), in place of
//! `cluster_metadata.lua` and `cluster_index.lua` (one script a key). Each round trip is one
//! pipeline over the primaries; what must come after another write comes in a later round
//! trip. A TTL that falls short is extended by `PEXPIRE … GT` (or `NX` and `GT` on a set the
//! follow-up may have made), which never shortens one whatever other writers do meanwhile.
//!
//! - [`add`]: `SADD` each index set (`PTTL` first) and `HMGET` the metadata hash; the user
//!   set after the user's own set, so that it never names a user none of whose tasks is
//!   listed. Where the hash names another owner or none, `cluster_metadata.lua` rewrites it
//!   and says what it named, in one step.
//! - [`leave`]: `SREM` from each set (no TTL read or changed: what is left was written by
//!   writes that extended it), then the user from the user set where none of their tasks is
//!   left in the service, checked again after.
//!
//! Where a command fails (a key of another type, whose typed error the scripts report; a
//! server without `GT`, Redis 6.2) the answer is `None` and the scripts make the step: what
//! was added or removed by then is added or removed again, which changes nothing. Once the
//! server has answered that it has no `FCALL` (Redis 6.2, which has no `GT` either), and on
//! write path `script`, the scripts make every follow-up.

use fred::interfaces::HashesInterface;
use fred::prelude::{ClientLike, Error as FredError, KeysInterface, SetsInterface, Value};
use fred::types::ExpireOptions;
use task_state_core::layout::TaskIndexes;

use super::{Owner, Reads};
use crate::execution::Executor;
use crate::keys;
use crate::scan;
use crate::scripts::SCRIPTS;
use crate::settings::WritePath;
use crate::ttl;
use crate::write::Command;

/// The additions of a follow-up for task `id`, whose record names `owner` and has the TTL
/// `ttl_ms` (-1: none): `Some` with how many index members and metadata fields it added or
/// corrected and the owner the metadata hash named, `None` where the scripts are to make
/// them.
pub(super) async fn add(
    exec: &Executor,
    reads: Reads,
    id: &str,
    owner: &Owner,
    ttl_ms: i64,
) -> Option<(u64, Owner)> {
    if !plain_allowed(exec) {
        return None;
    }
    let fresh = matches!(reads, Reads::Fresh);
    if let Reads::Kept(carried) = reads {
        if let Some(added) = add_known(exec, id, owner, ttl_ms, carried).await {
            return Some(added);
        }
    }
    let client = exec.writer().next();
    let indexes = TaskIndexes::of(&owner.0, &owner.1);
    let mkey = keys::metadata(id);
    let sets = indexes.task_sets();
    let first = async {
        let pipeline = client.pipeline().with_options(&scan::resendable());
        if !fresh {
            let _: () = pipeline.hmget(&mkey, vec!["service", "user_id"]).await?;
            let _: () = pipeline.pttl(&mkey).await?;
        }
        for key in sets {
            let _: () = pipeline.pttl(key).await?;
            let _: () = pipeline.sadd(key, id).await?;
        }
        scan::try_all(client, &pipeline).await
    };
    // The script rewrites the hash and says what it named, in one step (in another slot).
    let rewrite_hash = || async {
        let args = vec![owner.0.clone(), owner.1.clone(), ttl_ms.to_string()];
        super::eval_on(exec, &SCRIPTS.cluster_metadata, &mkey, args)
            .await
            .ok()
    };
    let users = async {
        let pipeline = client.pipeline().with_options(&scan::resendable());
        let _: () = pipeline.pttl(&indexes.service_users).await.ok()?;
        let _: () = pipeline.sadd(&indexes.service_users, &owner.1).await.ok()?;
        answers(scan::try_all(client, &pipeline).await)
    };
    // The replies of the sets, the script's where it rewrote the hash, the hash's TTL where
    // it named `owner` already (and was left as it was), and the replies of the user set.
    let (set_replies, rewritten, meta_pttl, user_replies) = if fresh {
        // A new task: no hash to read first (one left by an expired record is rewritten
        // all the same), so the script runs beside the sets' round trip and the user set's.
        let (replies, rewritten, user_replies) = futures::join!(first, rewrite_hash(), users);
        (answers(replies)?, Some(rewritten?), None, user_replies?)
    } else {
        let mut replies = answers(first.await)?;
        if replies.len() < 2 {
            return None;
        }
        let set_replies = replies.split_off(2);
        let named = owner_named(&replies[0])?;
        // A hash that names another owner, or none: the script, beside the user set's
        // round trip.
        let rewrite = async {
            if &named == owner {
                return Some(None);
            }
            Some(Some(rewrite_hash().await?))
        };
        let (rewritten, user_replies) = futures::join!(rewrite, users);
        let meta_pttl = int(&replies[1]);
        (set_replies, rewritten?, meta_pttl, user_replies?)
    };
    let headroom = ttl::headroom(ttl_ms);
    let after = |margin: i64| ttl::beyond(ttl_ms, margin);
    let mut extensions = Vec::new();
    let mut fixed = 0;
    let named = match rewritten {
        Some(meta) => {
            let named = (super::text_at(&meta, 0), super::text_at(&meta, 1));
            fixed += u64::from(&named != owner);
            named
        }
        None => {
            let need = after(ttl::METADATA_GRACE_MS);
            extension(&mut extensions, &mkey, meta_pttl?, need, headroom);
            owner.clone()
        }
    };
    let all_sets = sets.into_iter().chain([indexes.service_users.as_str()]);
    let pairs = set_replies.chunks(2).chain([&user_replies[..]]);
    for (key, pair) in all_sets.zip(pairs) {
        let [pttl, sadd] = pair else { return None };
        fixed += u64::try_from(int(sadd)?).ok()?;
        extension(
            &mut extensions,
            key,
            int(pttl)?,
            after(ttl::INDEX_MARGIN_MS),
            headroom,
        );
    }
    if !extensions.is_empty() {
        write(client, &extensions).await?;
    }
    Some((fixed, named))
}

/// The reads of [`add_known`] for task `id` of `owner`, in its order: the metadata hash's
/// owner and TTL, then the membership and TTL of each index set (the user set last). None
/// where the follow-ups are the scripts'.
pub(super) fn known_reads(exec: &Executor, id: &str, owner: &Owner) -> Vec<Command> {
    if !plain_allowed(exec) {
        return Vec::new();
    }
    let indexes = TaskIndexes::of(&owner.0, &owner.1);
    let mkey = keys::metadata(id);
    let mut reads = vec![
        Command::Hmget(mkey.clone(), vec!["service", "user_id"]),
        Command::Pttl(mkey),
    ];
    for (key, member) in memberships(&indexes, id, &owner.1) {
        reads.push(Command::Sismember(key.to_owned(), member.to_owned()));
        reads.push(Command::Pttl(key.to_owned()));
    }
    reads
}

/// Each index set of a task `id` of user `user` with the member the task puts there: the
/// four sets of task ids, then the service's user set (written after the user's own set).
fn memberships<'a>(
    indexes: &'a TaskIndexes,
    id: &'a str,
    user: &'a str,
) -> [(&'a str, &'a str); 5] {
    let [tasks, service, service_user, user_tasks] = indexes.task_sets();
    [
        (tasks, id),
        (service, id),
        (service_user, id),
        (user_tasks, id),
        (&indexes.service_users, user),
    ]
}

/// [`add`] from what the write path's links keep of the metadata hash and the index sets
/// ([`crate::write::tracked_reads`]), and the replies the record's step `carried`: `SADD`
/// only where a member is missing, a TTL extended only where it falls short, nothing where
/// the task is in its indexes already. `None` where the reads cannot be had or the hash
/// names another owner or none ([`add`]'s pipeline then reads and writes, and the script
/// rewrites the hash).
async fn add_known(
    exec: &Executor,
    id: &str,
    owner: &Owner,
    ttl_ms: i64,
    carried: Vec<Option<Value>>,
) -> Option<(u64, Owner)> {
    let indexes = TaskIndexes::of(&owner.0, &owner.1);
    let mkey = keys::metadata(id);
    let reads = known_reads(exec, id, owner);
    let replies = crate::write::tracked_reads(exec, reads, carried).await?;
    let [fields, meta_pttl, set_replies @ ..] = &replies[..] else {
        return None;
    };
    if owner_named(fields)? != *owner {
        return None;
    }
    let headroom = ttl::headroom(ttl_ms);
    let after = |margin: i64| ttl::beyond(ttl_ms, margin);
    let mut first = Vec::new();
    let need = after(ttl::METADATA_GRACE_MS);
    extension(&mut first, &mkey, int(meta_pttl)?, need, headroom);
    // The sets of task ids, then the user set (after the user's own set).
    let mut then = Vec::new();
    let sets = memberships(&indexes, id, &owner.1);
    for (n, ((key, member), pair)) in sets.into_iter().zip(set_replies.chunks(2)).enumerate() {
        let [held, pttl] = pair else { return None };
        let writes = if n + 1 < sets.len() {
            &mut first
        } else {
            &mut then
        };
        if int(held)? != 1 {
            writes.push(Write::Add(key.to_owned(), member.to_owned()));
        }
        extension(
            writes,
            key,
            int(pttl)?,
            after(ttl::INDEX_MARGIN_MS),
            headroom,
        );
    }
    let client = exec.writer().next();
    let mut fixed = 0;
    for writes in [first, then] {
        if !writes.is_empty() {
            fixed += write(client, &writes).await?;
        }
    }
    Some((fixed, owner.clone()))
}

/// The owner an `HMGET service user_id` reply names (`''` for a field not there).
fn owner_named(fields: &Value) -> Option<Owner> {
    match fields {
        Value::Array(fields) => Some((
            fields.first().and_then(scan::text).unwrap_or_default(),
            fields.get(1).and_then(scan::text).unwrap_or_default(),
        )),
        _ => None,
    }
}

/// Takes task `id` out of `sets` and out of `service_user` (the set of `user`'s tasks in the
/// service), then `user` out of `users` (the service's user set) where no task of theirs is
/// left there, checked again after; no TTL is read or changed (nothing left needs a longer
/// life). `Some(whether it removed anything)`, `None` where the scripts are to make it.
pub(super) async fn leave(
    exec: &Executor,
    id: &str,
    sets: &[&str],
    (service_user, users, user): (&str, &str, &str),
) -> Option<bool> {
    if !plain_allowed(exec) {
        return None;
    }
    let client = exec.writer().next();
    let keys: Vec<&str> = sets.iter().copied().chain([service_user]).collect();
    let first = async {
        let pipeline = client.pipeline().with_options(&scan::resendable());
        for key in &keys {
            let _: () = pipeline.srem(*key, id).await?;
        }
        let _: () = pipeline.scard(service_user).await?;
        scan::try_all(client, &pipeline).await
    };
    let replies = answers(first.await)?;
    let (removals, [left]) = replies.split_at(keys.len()) else {
        return None;
    };
    let mut removed = false;
    for srem in removals {
        removed |= int(srem)? > 0;
    }
    if int(left)? == 0 {
        let pipeline = client.pipeline().with_options(&scan::resendable());
        let _: () = pipeline.srem(users, user).await.ok()?;
        let replies = answers(scan::try_all(client, &pipeline).await)?;
        removed |= int(replies.first()?)? > 0;
        super::put_user_back(exec, service_user, users, user)
            .await
            .ok()?;
    }
    Some(removed)
}

/// Sends `writes` in one round trip: how many members they added, `None` where one failed.
async fn write(client: &fred::clients::Client, writes: &[Write]) -> Option<u64> {
    let round = async {
        let pipeline = client.pipeline().with_options(&scan::resendable());
        for write in writes {
            let _: () = match write {
                Write::Add(key, member) => pipeline.sadd(key, member).await?,
                Write::Persist(key) => pipeline.persist(key).await?,
                Write::Longer(key, ms, options) => {
                    pipeline.pexpire(key, *ms, Some(options.clone())).await?
                }
            };
        }
        scan::try_all(client, &pipeline).await
    };
    let replies = answers(round.await)?;
    let added = writes
        .iter()
        .zip(&replies)
        .filter(|(w, reply)| matches!(w, Write::Add(..)) && int(reply) == Some(1))
        .count();
    u64::try_from(added).ok()
}

/// Whether the follow-ups may be plain commands: not where the scripts are asked for
/// (`WritePath::Script`, every step as before issue 21), nor on a server without Redis
/// Functions, so without `PEXPIRE … GT` (Redis 6.2).
fn plain_allowed(exec: &Executor) -> bool {
    exec.settings().write_path() != WritePath::Script && exec.may_have_functions()
}

/// A write of a follow-up.
enum Write {
    /// `SADD key member`.
    Add(String, String),
    /// `PERSIST key`: the record never expires.
    Persist(String),
    /// `PEXPIRE key ms GT` (or `NX`).
    Longer(String, i64, ExpireOptions),
}

/// The writes that extend `key`, whose PTTL was `current` before this follow-up wrote it, to
/// last at least `need` (-1: forever), with `headroom` more where it falls short: as
/// `extend_ttl` of `lua/lib/layout.lua`, never shortening a TTL.
fn extension(out: &mut Vec<Write>, key: &str, current: i64, need: i64, headroom: i64) {
    if need == -1 {
        if current >= 0 {
            out.push(Write::Persist(key.to_owned()));
        }
        return;
    }
    let longer = |options| Write::Longer(key.to_owned(), need + headroom, options);
    if current == -2 {
        // Made by this follow-up's `SADD` (no TTL yet: `NX`), or by another writer since
        // (whose TTL `GT` extends where it is shorter).
        out.push(longer(ExpireOptions::NX));
        out.push(longer(ExpireOptions::GT));
    } else if current >= 0 && current < need {
        out.push(longer(ExpireOptions::GT));
    }
}

/// The replies of a round trip, `None` where it or any command failed.
fn answers(round: Result<Vec<Result<Value, FredError>>, FredError>) -> Option<Vec<Value>> {
    round.ok()?.into_iter().collect::<Result<Vec<_>, _>>().ok()
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}
