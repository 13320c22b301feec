//! Reads of many keys from the reader pool: every member of an index set, and records in
//! batches, with what each batch could not read.

use std::collections::HashSet;

use fred::clients::Client;
use fred::prelude::{KeysInterface, Value};
use task_state_core::{Error, Result, TaskList, TaskRecord, Unreadable};

use crate::cluster;
use crate::execution::{Executor, Topology};
use crate::keys;
use crate::scan;

/// Every member of the set `key`, SSCAN by SSCAN, without duplicates; then those that are
/// not UTF-8, [escaped](scan::escaped).
pub(crate) async fn set_members(
    exec: &Executor,
    client: &Client,
    key: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut seen = HashSet::new();
    let mut members = Vec::new();
    let mut not_utf8 = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = scan::members_page(client, key, &cursor)
            .await
            .map_err(|e| exec.read_error(e, key, "set"))?;
        for member in page.items {
            if seen.insert(member.clone()) {
                members.push(member);
            }
        }
        not_utf8.extend(page.not_utf8);
        if page.next == "0" {
            not_utf8.sort();
            not_utf8.dedup();
            return Ok((members, not_utf8));
        }
        cursor = page.next;
    }
}

/// Reads the records of `ids` (valid task ids), [`scan::PAGE`] at a time, into `list`:
/// each record `decode`d, or unreadable with why. A missing record and an empty string
/// (no record, as for `get`: Python's listing skips it too) are left out.
pub(crate) async fn read_records(
    exec: &Executor,
    client: &Client,
    ids: &[&str],
    decode: impl Fn(&str, &[u8]) -> Result<TaskRecord>,
    list: &mut TaskList,
) -> Result<()> {
    for chunk in ids.chunks(scan::PAGE) {
        let keys: Vec<String> = chunk.iter().map(|id| keys::record(id)).collect();
        // On a cluster the records are in many slots: one GET each, pipelined.
        let values: Vec<Value> = match exec.topology() {
            Topology::SingleNode => client.mget(keys.clone()).await,
            Topology::Cluster => cluster::get_each(client, keys.clone()).await,
        }
        .map_err(|e| exec.backend(e, "reading records"))?;
        let mut absent = Vec::new();
        for ((id, key), value) in chunk.iter().zip(&keys).zip(values) {
            let decoded = match value {
                Value::Null => {
                    absent.push((*id, key));
                    continue;
                }
                Value::String(s) if s.is_empty() => continue,
                Value::Bytes(b) if b.is_empty() => continue,
                Value::String(s) => decode(key, s.as_bytes()),
                Value::Bytes(b) => decode(key, &b),
                other => Err(Error::decode(
                    key.clone(),
                    format!("unexpected value {other:?}"),
                )),
            };
            match decoded {
                Ok(record) => list.records.push(record),
                Err(error) => list.unreadable.push(Unreadable {
                    task_id: (*id).to_owned(),
                    error,
                }),
            }
        }
        wrong_types(exec, client, &absent, list).await?;
    }
    Ok(())
}

/// MGET answers nil both for a missing key and for a key of another type: those of the
/// `absent` (id, key) that exist are unreadable, of the wrong type.
async fn wrong_types(
    exec: &Executor,
    client: &Client,
    absent: &[(&str, &String)],
    list: &mut TaskList,
) -> Result<()> {
    if absent.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = absent.iter().map(|(_, key)| (*key).clone()).collect();
    let exists = scan::per_key(client, "EXISTS", keys)
        .await
        .map_err(|e| exec.backend(e, "checking keys"))?;
    for ((id, key), exists) in absent.iter().zip(exists) {
        if exists > 0 {
            list.unreadable.push(Unreadable {
                task_id: (*id).to_owned(),
                error: Error::WrongType {
                    key: (*key).clone(),
                    expected: "string",
                },
            });
        }
    }
    Ok(())
}
