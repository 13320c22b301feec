//! What a writer pool's write path remembers of the tasks it wrote lately: the owner an
//! optimistic edit found (the next edit reads that owner's index sets with the record, one
//! round trip less) and the record's length after the last write (on the `auto` path, the
//! size that chooses between the script and the optimistic edit).

use std::collections::HashMap;
use std::sync::Mutex;

use super::attempt::Owner;

/// The most tasks remembered; the memory starts again empty when full.
const TASKS_KEPT: usize = 4_096;

/// What is known of one task.
#[derive(Debug, Clone, Default)]
struct Known {
    owner: Option<Owner>,
    len: Option<usize>,
}

/// The tasks a writer pool wrote lately, by task id.
#[derive(Debug, Default)]
pub(super) struct KnownTasks {
    tasks: Mutex<HashMap<String, Known>>,
}

impl KnownTasks {
    /// The owner an optimistic edit of `task_id` found, if any.
    pub(super) fn owner_of(&self, task_id: &str) -> Option<Owner> {
        self.read(task_id, |known| known.owner.clone())
    }

    /// The length of `task_id`'s record after the last write this pool made, if any.
    pub(super) fn len_of(&self, task_id: &str) -> Option<usize> {
        self.read(task_id, |known| known.len)
    }

    pub(super) fn note_owner(&self, task_id: &str, owner: Owner) {
        self.update(task_id, |known| known.owner = Some(owner));
    }

    pub(super) fn note_len(&self, task_id: &str, len: usize) {
        self.update(task_id, |known| known.len = Some(len));
    }

    fn read<T>(&self, task_id: &str, f: impl FnOnce(&Known) -> Option<T>) -> Option<T> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.get(task_id).and_then(f)
    }

    fn update(&self, task_id: &str, f: impl FnOnce(&mut Known)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= TASKS_KEPT && !tasks.contains_key(task_id) {
            tasks.clear();
        }
        f(tasks.entry(task_id.to_owned()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_length_are_kept_apart_and_the_memory_is_bounded() {
        let known = KnownTasks::default();
        known.note_len("a", 10);
        assert_eq!(known.owner_of("a"), None);
        known.note_owner("a", ("s".to_owned(), "u".to_owned()));
        assert_eq!(known.len_of("a"), Some(10));
        assert_eq!(known.owner_of("a").map(|o| o.0), Some("s".to_owned()));
        for n in 0..TASKS_KEPT {
            known.note_len(&n.to_string(), n);
        }
        assert!(known.tasks.lock().unwrap().len() <= TASKS_KEPT);
    }
}
