//! The key space: the keys of the Redis layout, their values and when they expire.

use std::collections::{BTreeSet, HashMap};

use task_state_core::jiff::{SignedDuration, Timestamp};
use task_state_core::TaskRecord;

use task_state_core::layout::{self, TaskIndexes, METADATA_GRACE_SECONDS};

/// How long the metadata hash outlives the record.
const METADATA_GRACE: SignedDuration = SignedDuration::from_secs(METADATA_GRACE_SECONDS as i64);

/// What the metadata hash holds: which service and user index a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) service: String,
    pub(crate) user_id: String,
}

impl Owner {
    /// The service and user of `record`.
    pub(crate) fn of(record: &TaskRecord) -> Self {
        Owner {
            service: record.service.clone(),
            user_id: record.user_id.clone(),
        }
    }

    fn indexes(&self) -> TaskIndexes {
        TaskIndexes::of(&self.service, &self.user_id)
    }
}

struct Expiring<T> {
    value: T,
    expires_at: Timestamp,
}

fn after(at: Timestamp, ttl: SignedDuration) -> Timestamp {
    at.saturating_add(ttl).unwrap_or(Timestamp::MAX)
}

/// Every key of the layout, by type. Record and metadata keys are held by task id.
#[derive(Default)]
pub(crate) struct Store {
    records: HashMap<String, Expiring<String>>,
    metadata: HashMap<String, Expiring<Owner>>,
    sets: HashMap<String, Expiring<BTreeSet<String>>>,
    /// An i64, as Redis keeps the counter that INCR increments.
    sequence: Option<i64>,
}

impl Store {
    /// Drops every key whose time has come. Each expired record gets the cleanup that the
    /// Redis backend's expiry listener gives it at the moment it expires: its metadata (alive
    /// 60 s longer for this) says which index entries to remove, and goes with them.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        let mut expired: Vec<(Timestamp, String)> = self
            .records
            .iter()
            .filter(|(_, record)| record.expires_at <= now)
            .map(|(id, record)| (record.expires_at, id.clone()))
            .collect();
        expired.sort();
        for (at, id) in expired {
            self.records.remove(&id);
            let owner = self
                .metadata
                .remove(&id)
                .filter(|metadata| metadata.expires_at > at);
            if let Some(owner) = owner {
                self.unindex(&id, &owner.value);
            }
        }
        self.metadata
            .retain(|_, metadata| metadata.expires_at > now);
        self.sets.retain(|_, set| set.expires_at > now);
    }

    /// The stored record text.
    pub(crate) fn record(&self, task_id: &str) -> Option<&str> {
        self.records.get(task_id).map(|r| r.value.as_str())
    }

    /// Writes the record, its metadata and its five index sets. No expiry time moves earlier:
    /// each key lives at least `ttl` from now, the metadata 60 s longer than the record, and
    /// each index at least as long as the record. When the task was indexed under another
    /// owner, it leaves those indexes first.
    pub(crate) fn put(
        &mut self,
        task_id: &str,
        json: String,
        owner: Owner,
        now: Timestamp,
        ttl: SignedDuration,
    ) {
        let old = self.metadata.get(task_id).map(|m| m.value.clone());
        if let Some(old) = old.filter(|old| *old != owner) {
            self.unindex(task_id, &old);
        }
        let record_expiry = self
            .records
            .get(task_id)
            .map_or(after(now, ttl), |r| r.expires_at.max(after(now, ttl)));
        let indexes = owner.indexes();
        for key in indexes.task_sets() {
            self.add(key, task_id, record_expiry);
        }
        self.add(&indexes.service_users, &owner.user_id, record_expiry);
        self.records.insert(
            task_id.to_owned(),
            Expiring {
                value: json,
                expires_at: record_expiry,
            },
        );
        let metadata_expiry = self
            .metadata
            .get(task_id)
            .map_or(after(record_expiry, METADATA_GRACE), |m| {
                m.expires_at.max(after(record_expiry, METADATA_GRACE))
            });
        self.metadata.insert(
            task_id.to_owned(),
            Expiring {
                value: owner,
                expires_at: metadata_expiry,
            },
        );
    }

    /// Removes the record, its metadata and its index entries; the sets left non-empty keep
    /// their expiry (as on Redis, a delete reads and extends no TTL). Returns whether any of
    /// the record or the entries existed.
    pub(crate) fn remove(&mut self, task_id: &str) -> bool {
        let had_record = self.records.remove(task_id).is_some();
        let owner = self.metadata.remove(task_id).map(|m| m.value);
        let had_entry = match owner {
            Some(owner) => self.unindex(task_id, &owner),
            None => self.remove_member(layout::TASK_INDEX, task_id),
        };
        had_record || had_entry
    }

    /// The members of a set, empty when it does not exist.
    pub(crate) fn members(&self, key: &str) -> Vec<String> {
        self.sets
            .get(key)
            .map(|set| set.value.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// INCR of the id counter. (Redis refuses to go past i64::MAX; 2^63 ids are out of reach
    /// here, so the counter stops there instead.)
    pub(crate) fn next_id(&mut self) -> i64 {
        let next = self.sequence.unwrap_or(0).saturating_add(1);
        self.sequence = Some(next);
        next
    }

    /// The counter plus one, 1 when it does not exist; one past i64::MAX at the end, as
    /// Python's `int(raw) + 1` answers.
    pub(crate) fn peek_id(&self) -> i128 {
        i128::from(self.sequence.unwrap_or(0)) + 1
    }

    /// Every key, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .records
            .keys()
            .map(|id| layout::record_key(id))
            .chain(self.metadata.keys().map(|id| layout::metadata_key(id)))
            .chain(self.sets.keys().cloned())
            .chain(self.sequence.map(|_| layout::SEQUENCE.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// When `key` expires; `None` when it does not exist or never expires.
    pub(crate) fn expires_at(&self, key: &str) -> Option<Timestamp> {
        match layout::LayoutKey::parse(key) {
            Some(layout::LayoutKey::Record(id)) => self.records.get(&id).map(|r| r.expires_at),
            Some(layout::LayoutKey::Metadata(id)) => self.metadata.get(&id).map(|m| m.expires_at),
            _ => self.sets.get(key).map(|s| s.expires_at),
        }
    }

    /// SADD, then an expiry no earlier than before.
    fn add(&mut self, key: &str, member: &str, expires_at: Timestamp) {
        let set = self.sets.entry(key.to_owned()).or_insert_with(|| Expiring {
            value: BTreeSet::new(),
            expires_at,
        });
        set.value.insert(member.to_owned());
        set.expires_at = set.expires_at.max(expires_at);
    }

    /// SREM; like Redis, a set left empty is gone. Returns whether the member was there.
    fn remove_member(&mut self, key: &str, member: &str) -> bool {
        let Some(set) = self.sets.get_mut(key) else {
            return false;
        };
        let removed = set.value.remove(member);
        if set.value.is_empty() {
            self.sets.remove(key);
        }
        removed
    }

    /// Takes the id out of its owner's four sets, and the user out of the service's user
    /// set when that was their last task there. Returns whether any entry existed.
    fn unindex(&mut self, task_id: &str, owner: &Owner) -> bool {
        let indexes = owner.indexes();
        let mut removed = false;
        for key in indexes.task_sets() {
            removed |= self.remove_member(key, task_id);
        }
        if !self.sets.contains_key(&indexes.service_user) {
            self.remove_member(&indexes.service_users, &owner.user_id);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peeked_id_goes_one_past_i64_max() {
        let mut store = Store::default();
        assert_eq!(store.peek_id(), 1);
        assert_eq!(store.next_id(), 1);
        store.sequence = Some(i64::MAX);
        assert_eq!(store.peek_id().to_string(), "9223372036854775808");
    }
}
