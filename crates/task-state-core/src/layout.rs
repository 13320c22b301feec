//! The key layout of the store, in one place: the names the Python package uses, the TTL
//! defaults, and a parser that tells a key of the layout from any other key in the same
//! database.
//!
//! ```
//! use task_state_core::layout::{self, LayoutKey};
//! assert_eq!(layout::record_key("7"), "task:7");
//! assert_eq!(layout::service_user_index("render", "bob"), "index:service:render:user:bob");
//! assert_eq!(
//!     LayoutKey::parse("index:service:render:users"),
//!     Some(LayoutKey::ServiceUsers("render".to_owned()))
//! );
//! // An application's own key that only looks like an index is not part of the layout.
//! assert_eq!(LayoutKey::parse("index:recent-searches"), None);
//! ```

use crate::repository::Scope;
use crate::validate::validate_name;

/// The set of every task id.
pub const TASK_INDEX: &str = "index:tasks";
/// The counter behind `next_task_id`.
pub const SEQUENCE: &str = "task:id:sequence";
/// The TTL of records and indexes when none is configured: 90 days, as in the Python package.
pub const DEFAULT_TTL_SECONDS: u64 = 7_776_000;
/// How long the metadata hash outlives its record: long enough for the expiry cleanup to read
/// which indexes hold the task's id.
pub const METADATA_GRACE_SECONDS: u64 = 60;
/// How much longer than its record an index set is kept, in milliseconds: Redis does not
/// read the clock the same way for every expiry command of a script (`SET`'s `PX` and
/// `PEXPIRE` can differ by the time the script has run), so an index given exactly the
/// record's TTL could expire a few milliseconds before it.
pub const INDEX_MARGIN_MS: u64 = 1_000;
/// The most headroom past what it needs that a refreshed key of a task (an index set, the
/// metadata hash) is given, in milliseconds: a tenth of the record's TTL, at most an hour.
/// The writes that follow within it find the key's TTL still covering their record and do
/// not write it again.
pub const REFRESH_HEADROOM_MAX_MS: u64 = 3_600_000;
/// The longest TTL accepted, in seconds: 100 years of 365.25 days. Redis refuses expiry
/// times that overflow its clock; this bound keeps every TTL far from that.
pub const MAX_TTL_SECONDS: u64 = 3_155_760_000;

/// What every record key and metadata key starts with: `task:`.
pub const TASK_PREFIX: &str = "task:";
/// What a metadata key ends with, after the task id: `:metadata`.
pub const METADATA_SUFFIX: &str = ":metadata";
/// What every index key starts with: `index:`.
pub const INDEX_PREFIX: &str = "index:";
/// What a service's index keys start with: `index:service:`.
pub const SERVICE_PREFIX: &str = "index:service:";
/// What a user's index key across services starts with: `index:user:`.
pub const USER_PREFIX: &str = "index:user:";
/// What a service's set of users ends with, after the service: `:users`.
pub const USERS_SUFFIX: &str = ":users";
/// What stands between the service and the user in a service's user index: `:user:`.
pub const USER_INFIX: &str = ":user:";

/// `task:{task_id}`: the record.
pub fn record_key(task_id: &str) -> String {
    [TASK_PREFIX, task_id].concat()
}

/// `task:{task_id}:metadata`: the hash that names the task's service and user.
pub fn metadata_key(task_id: &str) -> String {
    [TASK_PREFIX, task_id, METADATA_SUFFIX].concat()
}

/// `index:service:{service}`: the ids of a service's tasks.
pub fn service_index(service: &str) -> String {
    [SERVICE_PREFIX, service].concat()
}

/// `index:service:{service}:users`: the users with tasks in a service.
pub fn service_users(service: &str) -> String {
    [SERVICE_PREFIX, service, USERS_SUFFIX].concat()
}

/// `index:service:{service}:user:{user_id}`: the ids of a user's tasks in a service.
pub fn service_user_index(service: &str, user_id: &str) -> String {
    [SERVICE_PREFIX, service, USER_INFIX, user_id].concat()
}

/// `index:user:{user_id}`: the ids of a user's tasks across services.
pub fn user_index(user_id: &str) -> String {
    [USER_PREFIX, user_id].concat()
}

/// The index set that lists the tasks of a scope.
pub fn scope_index(scope: &Scope) -> String {
    match scope {
        Scope::All => TASK_INDEX.to_owned(),
        Scope::Service(service) => service_index(service),
        Scope::ServiceUser { service, user_id } => service_user_index(service, user_id),
        Scope::User(user_id) => user_index(user_id),
    }
}

/// Whether `key` is in the indexes' part of the key space (`index:...`), as the key an
/// [`Error::WrongType`](crate::Error::WrongType) names is: a listing that meets a record
/// of the wrong type goes on, one whose index has the wrong type cannot.
///
/// ```
/// use task_state_core::layout::{self, is_index_key};
/// assert!(is_index_key(&layout::user_index("bob")));
/// assert!(!is_index_key(&layout::record_key("7")));
/// ```
pub fn is_index_key(key: &str) -> bool {
    key.starts_with(INDEX_PREFIX)
}

/// The families of keys that a SCAN of the store goes through, for [`scan_pattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFamily {
    /// `task:*`: the records, with the metadata hashes and the id sequence.
    Tasks,
    /// `task:*:metadata`: the metadata hashes.
    Metadata,
    /// `index:*`: the index sets (and any other key an application put under `index:`;
    /// [`LayoutKey::parse`] tells them apart).
    Indexes,
}

/// The SCAN `MATCH` pattern of a [`KeyFamily`].
///
/// ```
/// use task_state_core::layout::{scan_pattern, KeyFamily};
/// assert_eq!(scan_pattern(KeyFamily::Metadata), "task:*:metadata");
/// ```
pub fn scan_pattern(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::Tasks => "task:*",
        KeyFamily::Metadata => "task:*:metadata",
        KeyFamily::Indexes => "index:*",
    }
}

/// The SCAN `MATCH` pattern of the user's index in every service,
/// `index:service:*:user:{user_id}`, with the glob characters of `user_id` escaped.
///
/// ```
/// use task_state_core::layout::service_user_indexes_pattern;
/// assert_eq!(service_user_indexes_pattern("bo*b"), "index:service:*:user:bo\\*b");
/// ```
pub fn service_user_indexes_pattern(user_id: &str) -> String {
    let mut pattern = format!("{SERVICE_PREFIX}*{USER_INFIX}");
    for c in user_id.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// `Some((service, user_id))` when both names could be part of a key ([`validate_name`]):
/// the owner whose index sets a task is in. Names that could not (empty, with `:`, ...) name
/// no owner, and never build a key.
///
/// ```
/// use task_state_core::layout::key_owner;
/// assert_eq!(key_owner("render", "bob"), Some(("render".to_owned(), "bob".to_owned())));
/// assert_eq!(key_owner("a:user:b", "bob"), None);
/// assert_eq!(key_owner("render", ""), None);
/// ```
pub fn key_owner(service: &str, user_id: &str) -> Option<(String, String)> {
    (validate_name("service", service).is_ok() && validate_name("user id", user_id).is_ok())
        .then(|| (service.to_owned(), user_id.to_owned()))
}

/// The owner ([`key_owner`]) that a stored record's text names, read leniently: a record
/// that does not decode as a task elsewhere still says which indexes hold it. `None` when the
/// text is not a JSON object with string members `service` and `user_id` that could be part
/// of a key.
///
/// ```
/// use task_state_core::layout::record_owner;
/// let text = r#"{"service":"render","user_id":"bob","status":"exploded"}"#;
/// assert_eq!(record_owner(text), Some(("render".to_owned(), "bob".to_owned())));
/// assert_eq!(record_owner(r#"{"service":"","user_id":"bob"}"#), None);
/// ```
pub fn record_owner(json: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Named {
        service: String,
        user_id: String,
    }
    let named: Named = serde_json::from_str(json).ok()?;
    key_owner(&named.service, &named.user_id)
}

/// The five index sets a task of `service` and `user_id` belongs to, by name. All but
/// `service_users` hold the task id; `service_users` holds the user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIndexes {
    /// `index:tasks`.
    pub tasks: String,
    /// `index:service:{service}`.
    pub service: String,
    /// `index:service:{service}:users`.
    pub service_users: String,
    /// `index:service:{service}:user:{user_id}`.
    pub service_user: String,
    /// `index:user:{user_id}`.
    pub user: String,
}

impl TaskIndexes {
    /// The indexes of a task of `service` and `user_id`.
    pub fn of(service: &str, user_id: &str) -> Self {
        TaskIndexes {
            tasks: TASK_INDEX.to_owned(),
            service: service_index(service),
            service_users: service_users(service),
            service_user: service_user_index(service, user_id),
            user: user_index(user_id),
        }
    }

    /// The four sets that hold the task id, in the order the scripts write them.
    pub fn task_sets(&self) -> [&str; 4] {
        [&self.tasks, &self.service, &self.service_user, &self.user]
    }
}

/// A key of the layout, as [`LayoutKey::parse`] recognises it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutKey {
    /// `task:{id}`.
    Record(String),
    /// `task:{id}:metadata`.
    Metadata(String),
    /// `task:id:sequence`.
    Sequence,
    /// `index:tasks`.
    TaskIndex,
    /// `index:service:{service}`.
    ServiceIndex(String),
    /// `index:service:{service}:users`.
    ServiceUsers(String),
    /// `index:service:{service}:user:{user_id}`.
    ServiceUserIndex(String, String),
    /// `index:user:{user_id}`.
    UserIndex(String),
}

impl LayoutKey {
    /// What `key` is in the layout, or `None` for a key the layout does not name: each
    /// name in it must pass [`validate_name`], so `index:recent-searches` or
    /// `index:service:a:b:c` are not index keys, and tools never touch them.
    pub fn parse(key: &str) -> Option<Self> {
        let name = |n: &str| validate_name("name", n).is_ok().then(|| n.to_owned());
        if key == SEQUENCE {
            return Some(LayoutKey::Sequence);
        }
        if key == TASK_INDEX {
            return Some(LayoutKey::TaskIndex);
        }
        if let Some(rest) = key.strip_prefix(TASK_PREFIX) {
            return match rest.strip_suffix(METADATA_SUFFIX) {
                Some(id) => name(id).map(LayoutKey::Metadata),
                None => name(rest).map(LayoutKey::Record),
            };
        }
        if let Some(user) = key.strip_prefix(USER_PREFIX) {
            return name(user).map(LayoutKey::UserIndex);
        }
        let rest = key.strip_prefix(SERVICE_PREFIX)?;
        if let Some(service) = rest.strip_suffix(USERS_SUFFIX) {
            if let Some(service) = name(service) {
                return Some(LayoutKey::ServiceUsers(service));
            }
        }
        if let Some((service, user)) = rest.split_once(USER_INFIX) {
            return Some(LayoutKey::ServiceUserIndex(name(service)?, name(user)?));
        }
        name(rest).map(LayoutKey::ServiceIndex)
    }

    /// Whether the key is one of the index sets.
    pub fn is_index(&self) -> bool {
        !matches!(
            self,
            LayoutKey::Record(_) | LayoutKey::Metadata(_) | LayoutKey::Sequence
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_layout_parses_back() {
        let indexes = TaskIndexes::of("render", "bob");
        let cases = [
            (record_key("7"), LayoutKey::Record("7".into())),
            (metadata_key("7"), LayoutKey::Metadata("7".into())),
            (SEQUENCE.to_owned(), LayoutKey::Sequence),
            (indexes.tasks.clone(), LayoutKey::TaskIndex),
            (
                indexes.service.clone(),
                LayoutKey::ServiceIndex("render".into()),
            ),
            (
                indexes.service_users.clone(),
                LayoutKey::ServiceUsers("render".into()),
            ),
            (
                indexes.service_user.clone(),
                LayoutKey::ServiceUserIndex("render".into(), "bob".into()),
            ),
            (indexes.user.clone(), LayoutKey::UserIndex("bob".into())),
        ];
        for (key, expected) in cases {
            assert_eq!(LayoutKey::parse(&key), Some(expected), "{key}");
        }
    }

    #[test]
    fn keys_outside_the_layout_are_not_recognised() {
        for key in [
            "index:recent-searches",
            "index:service:a:b:c",
            "index:service:",
            "index:user:",
            "index:user:a:b",
            "task:",
            "task:1:2",
            "task::metadata",
            "session:9",
            "index:service:a:user:",
        ] {
            assert_eq!(LayoutKey::parse(key), None, "{key}");
        }
    }

    #[test]
    fn a_service_named_users_is_still_a_service() {
        assert_eq!(
            LayoutKey::parse("index:service:users"),
            Some(LayoutKey::ServiceIndex("users".into()))
        );
    }
}
