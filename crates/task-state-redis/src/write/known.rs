//! What a writer pool's write path remembers of the tasks it wrote lately: the owner an
//! optimistic edit found, so that the next edit reads that owner's index sets with the
//! record (one round trip less).

use std::collections::HashMap;
use std::sync::Mutex;

/// The owner of a task: its service and user id.
pub(super) type Owner = (String, String);

/// The most tasks remembered; the memory starts again empty when full.
const TASKS_KEPT: usize = 4_096;

/// The owners of the tasks a writer pool wrote lately, by task id.
#[derive(Debug, Default)]
pub(super) struct KnownTasks {
    owners: Mutex<HashMap<String, Owner>>,
}

impl KnownTasks {
    /// The owner an optimistic edit of `task_id` found, if any.
    pub(super) fn owner_of(&self, task_id: &str) -> Option<Owner> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.get(task_id).cloned()
    }

    pub(super) fn note_owner(&self, task_id: &str, owner: Owner) {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if owners.len() >= TASKS_KEPT && !owners.contains_key(task_id) {
            owners.clear();
        }
        owners.insert(task_id.to_owned(), owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_kept_and_the_memory_is_bounded() {
        let known = KnownTasks::default();
        assert_eq!(known.owner_of("a"), None);
        known.note_owner("a", ("s".to_owned(), "u".to_owned()));
        assert_eq!(known.owner_of("a").map(|o| o.0), Some("s".to_owned()));
        for n in 0..=TASKS_KEPT {
            known.note_owner(&n.to_string(), ("s".to_owned(), "u".to_owned()));
        }
        assert!(known.owners.lock().unwrap().len() <= TASKS_KEPT);
        assert_eq!(
            known.owner_of("a"),
            None,
            "forgotten when the memory filled"
        );
    }
}
