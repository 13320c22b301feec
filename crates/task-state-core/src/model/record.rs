//! The task record: its fields, its constructors, and its JSON encoding and decoding.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::jobs::JobsKey;
use super::{JobsField, PriorityLevel, TaskResult, TaskStatus};
use crate::error::{Error, Result};
use crate::raw::RawMap;
use crate::time::{Clock, SystemClock, TaskTime, Zone};

/// One task, as stored under `task:{task_id}`.
///
/// Serializing gives the Python package's JSON byte for byte: compact, fields in its order,
/// raw UTF-8, the values of `parameters` kept exactly as read (numbers keep their digits,
/// see [`RawMap`]), fields unknown to this version kept in [`TaskRecord::extra`] and written
/// back after the known ones.
///
/// ```
/// use task_state_core::{TaskRecord, TaskStatus};
/// let json = r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","parameters":{"ratio":0.30000000000000004},"jobs":[],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":[],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;
/// let record = TaskRecord::from_json(json).unwrap();
/// assert_eq!(record.status, TaskStatus::Running);
/// assert_eq!(record.to_json(), json);
/// assert_eq!(record.parameters["ratio"].get(), "0.30000000000000004");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task's id: unique, usually a number from the id sequence.
    pub task_id: String,
    /// The service that owns the task.
    pub service: String,
    /// The user who owns the task.
    pub user_id: String,
    /// Where the task is in its lifecycle.
    pub status: TaskStatus,
    /// Free-form parameters, each value kept exactly as read.
    pub parameters: RawMap,
    /// Job ids given by external schedulers.
    pub jobs: Vec<String>,
    /// When the task was registered.
    pub created_at: TaskTime,
    /// When the task last changed.
    pub updated_at: TaskTime,
    /// Log entries, `<timestamp>,<message>`, oldest first. See [`crate::LogEntry`].
    pub logs: Vec<String>,
    /// The workload's outputs.
    pub result: TaskResult,
    /// Scheduling priority.
    pub priority: PriorityLevel,
    /// Fields this version does not know, each value kept exactly as read, so that writing
    /// the record back loses nothing.
    pub extra: RawMap,
    jobs_key: JobsKey,
}

impl TaskRecord {
    /// A new record with empty parameters, jobs, logs and result, low priority, and both
    /// timestamps at the system clock's now in the zone of `DMS_TIMEZONE` (`Asia/Seoul` when
    /// unset), as Python's `now()` gives them ([`Zone::configured`]).
    /// Use [`TaskRecord::new_at`] to choose the time.
    ///
    /// ```
    /// use task_state_core::{TaskRecord, TaskStatus};
    /// let record = TaskRecord::new("42", "render", "alice", TaskStatus::Pending);
    /// assert!(record.logs.is_empty());
    /// ```
    pub fn new(
        task_id: impl Into<String>,
        service: impl Into<String>,
        user_id: impl Into<String>,
        status: TaskStatus,
    ) -> Self {
        let now = TaskTime::now(&SystemClock, &Zone::configured());
        Self::new_at(task_id, service, user_id, status, now)
    }

    /// Like [`TaskRecord::new`], created and updated at `now`.
    pub fn new_at(
        task_id: impl Into<String>,
        service: impl Into<String>,
        user_id: impl Into<String>,
        status: TaskStatus,
        now: TaskTime,
    ) -> Self {
        TaskRecord {
            task_id: task_id.into(),
            service: service.into(),
            user_id: user_id.into(),
            status,
            parameters: RawMap::new(),
            jobs: Vec::new(),
            created_at: now,
            updated_at: now,
            logs: Vec::new(),
            result: TaskResult::default(),
            priority: PriorityLevel::Low,
            extra: RawMap::new(),
            jobs_key: JobsKey::New,
        }
    }

    /// Gives a record made by [`TaskRecord::new`] the job list name `field`; a record read
    /// from the store keeps the name it was read with. Repositories call this when they
    /// store a record.
    pub fn adopt_jobs_field(&mut self, field: JobsField) {
        if matches!(self.jobs_key, JobsKey::New) {
            self.jobs_key = match field {
                JobsField::Jobs => JobsKey::Jobs,
                JobsField::ActiveJobs => JobsKey::ActiveJobs,
            };
        }
    }

    /// Sets the parameters (builder style): a [`RawMap`], a `serde_json::Map`, or an array of
    /// pairs.
    ///
    /// ```
    /// use task_state_core::serde_json::json;
    /// use task_state_core::{RawMap, TaskRecord, TaskStatus};
    ///
    /// let parameters = RawMap::try_from(json!({"frames": 240, "scene": "forest"}))?;
    /// let record = TaskRecord::new("42", "render", "alice", TaskStatus::Pending)
    ///     .with_parameters(parameters);
    /// assert_eq!(record.parameters.get_as::<u32>("frames")?, Some(240));
    /// # Ok::<(), task_state_core::serde_json::Error>(())
    /// ```
    pub fn with_parameters(mut self, parameters: impl Into<RawMap>) -> Self {
        self.parameters = parameters.into();
        self
    }

    /// Sets the priority (builder style).
    pub fn with_priority(mut self, priority: PriorityLevel) -> Self {
        self.priority = priority;
        self
    }

    /// Reads a record from the stored JSON.
    ///
    /// # Errors
    /// [`Error::Decode`] (with key `task:?`; backends replace it with the real key) when the
    /// text is not a record.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json)
            .map_err(|e| Error::decode(crate::layout::record_key("?"), e.to_string()))
    }

    /// Reads a record stored under `key`, naming that key in the error. A timestamp that is
    /// missing or `null` reads as the system clock's now in the zone of `DMS_TIMEZONE`, as
    /// the Python model's default gives it; a repository reads with
    /// [`TaskRecord::from_stored`] and its own clock and zone.
    ///
    /// # Errors
    /// [`Error::Decode`] naming `key`.
    pub fn from_json_at(key: &str, json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::decode(key, e.to_string()))
    }

    /// Reads a record stored under `key`, as a repository whose time is `clock`'s in `zone`
    /// reads it: a `created_at` or `updated_at` that is missing or `null` reads as `clock`'s
    /// now in `zone` (both the same instant), as the Python model's default fills it in the
    /// configured time zone, so that writing the record back stores that zone's offset.
    ///
    /// ```
    /// use task_state_core::{ManualClock, TaskRecord, Zone};
    /// let clock = ManualClock::new("2025-11-17T01:00:16Z".parse().unwrap());
    /// let zone = Zone::named("Asia/Seoul").unwrap();
    /// let json = br#"{"task_id":"5","service":"render","user_id":"bob","status":"running","created_at":null}"#;
    /// let record = TaskRecord::from_stored("task:5", json, &clock, &zone).unwrap();
    /// assert_eq!(record.created_at.to_string(), "2025-11-17T10:00:16+09:00");
    /// assert_eq!(record.updated_at, record.created_at);
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] naming `key`.
    pub fn from_stored(key: &str, json: &[u8], clock: &dyn Clock, zone: &Zone) -> Result<Self> {
        let visitor = RecordVisitor::<_, Kept>::new(|| TaskTime::now(clock, zone));
        let mut de = serde_json::Deserializer::from_slice(json);
        de.deserialize_map(visitor)
            .and_then(|record| de.end().map(|()| record))
            .map_err(|e| Error::decode(key, e.to_string()))
    }

    /// The JSON to store, byte for byte what the Python package writes.
    pub fn to_json(&self) -> String {
        // Serializing maps of strings and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The parsed log entries; an entry that does not parse is skipped.
    pub fn log_entries(&self) -> impl Iterator<Item = crate::LogEntry> + '_ {
        self.logs
            .iter()
            .filter_map(|l| crate::LogEntry::parse(l).ok())
    }

    /// The field name that holds the job ids in the stored JSON: `jobs`, or `active_jobs`
    /// for a record read from a DMS version that uses that name (or that has both members:
    /// then both are written).
    pub fn jobs_field(&self) -> &'static str {
        self.jobs_key.as_str()
    }

    /// Stamps `updated_at` with `clock`'s now in `zone`.
    pub fn touch(&mut self, clock: &dyn Clock, zone: &Zone) {
        self.updated_at = TaskTime::now(clock, zone);
    }
}

/// Encodes `text` as a JSON string literal, exactly as the record encoder does.
///
/// ```
/// assert_eq!(task_state_core::json_string("a\"b\nc"), r#""a\"b\nc""#);
/// ```
pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl Serialize for TaskRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("task_id", &self.task_id)?;
        map.serialize_entry("service", &self.service)?;
        map.serialize_entry("user_id", &self.user_id)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("parameters", &self.parameters)?;
        if matches!(self.jobs_key, JobsKey::Both) {
            map.serialize_entry("jobs", &self.jobs)?;
        }
        map.serialize_entry(self.jobs_key.as_str(), &self.jobs)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.serialize_entry("updated_at", &self.updated_at)?;
        map.serialize_entry("logs", &self.logs)?;
        map.serialize_entry("result", &self.result)?;
        map.serialize_entry("priority", &self.priority)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TaskRecord {
    /// A timestamp that is missing or `null` reads as the system clock's now in the zone of
    /// `DMS_TIMEZONE` ([`Zone::configured`]), as the Python model's default.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor =
            RecordVisitor::<_, Kept>::new(|| TaskTime::now(&SystemClock, &Zone::configured()));
        deserializer.deserialize_map(visitor)
    }
}

/// The fields of a stored record that a writer needs before it edits the record's text in
/// place: its owner and its status.
///
/// [`RecordHead::from_json`] accepts exactly the texts that [`TaskRecord::from_json`]
/// accepts (the one decoder serves both), but the log entries are only checked, never
/// kept: checking a record of 10,000 entries makes none of their strings.
///
/// ```
/// use task_state_core::{RecordHead, TaskStatus};
/// let json = r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","logs":["2025-11-17T10:00:16+09:00,started"]}"#;
/// let head = RecordHead::from_json(json).unwrap();
/// assert_eq!((head.service.as_str(), head.status), ("render", TaskStatus::Running));
/// // What a record may not hold, its head may not either.
/// assert!(RecordHead::from_json(r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","logs":[7]}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordHead {
    /// The service that owns the task.
    pub service: String,
    /// The user who owns the task.
    pub user_id: String,
    /// Where the task is in its lifecycle.
    pub status: TaskStatus,
}

impl RecordHead {
    /// Reads the head of a record from the stored JSON.
    ///
    /// # Errors
    /// [`Error::Decode`] (with key `task:?`) when [`TaskRecord::from_json`] would fail.
    pub fn from_json(json: &str) -> Result<Self> {
        let visitor =
            RecordVisitor::<_, Checked>::new(|| TaskTime::now(&SystemClock, &Zone::configured()));
        let mut de = serde_json::Deserializer::from_str(json);
        de.deserialize_map(visitor)
            .and_then(|record| de.end().map(|()| record))
            .map(|record| RecordHead {
                service: record.service,
                user_id: record.user_id,
                status: record.status,
            })
            .map_err(|e| Error::decode(crate::layout::record_key("?"), e.to_string()))
    }
}

/// A JSON array of strings, checked as `Vec<String>` would read it, and dropped.
#[derive(Default)]
struct CheckedStrings;

impl<'de> Deserialize<'de> for CheckedStrings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CheckedStrings)
    }
}

impl<'de> Visitor<'de> for CheckedStrings {
    type Value = CheckedStrings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of strings")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<CheckedString>()?.is_some() {}
        Ok(CheckedStrings)
    }
}

/// A JSON string, checked as `String` would read it, and dropped.
struct CheckedString;

impl<'de> Deserialize<'de> for CheckedString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(CheckedString)
    }
}

impl<'de> Visitor<'de> for CheckedString {
    type Value = CheckedString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(CheckedString)
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self, E> {
        // As `String` takes bytes: when they are UTF-8.
        std::str::from_utf8(bytes)
            .map(|_| CheckedString)
            .map_err(|_| E::invalid_value(de::Unexpected::Bytes(bytes), &self))
    }
}

/// How a record's visitor takes the members that a record's head does not need: made
/// ([`Kept`], the whole record), or only checked as they would be made ([`Checked`]: nothing
/// made of them, the record's head).
trait Members<'de> {
    /// An object of any values (`parameters`), as a [`RawMap`] takes it; `null` is empty.
    fn object<A: MapAccess<'de>>(map: &mut A) -> Result<RawMap, A::Error>;
    /// A member of a name the record does not know, into `extra`.
    fn unknown<A: MapAccess<'de>>(
        extra: &mut RawMap,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;
    /// An array of strings (`jobs`, `active_jobs`, `logs`); `null` is empty.
    fn strings<A: MapAccess<'de>>(map: &mut A) -> Result<Vec<String>, A::Error>;
}

/// The members made: a record's visitor makes the whole record.
struct Kept;

/// The members only checked: a record's visitor makes its head.
struct Checked;

impl<'de> Members<'de> for Kept {
    fn object<A: MapAccess<'de>>(map: &mut A) -> Result<RawMap, A::Error> {
        or_default(map)
    }

    fn unknown<A: MapAccess<'de>>(
        extra: &mut RawMap,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        extra.keep(key, map)
    }

    fn strings<A: MapAccess<'de>>(map: &mut A) -> Result<Vec<String>, A::Error> {
        or_default(map)
    }
}

impl<'de> Members<'de> for Checked {
    fn object<A: MapAccess<'de>>(map: &mut A) -> Result<RawMap, A::Error> {
        or_default::<_, CheckedObject>(map).map(|_| RawMap::new())
    }

    fn unknown<A: MapAccess<'de>>(_: &mut RawMap, _: &str, map: &mut A) -> Result<(), A::Error> {
        // A value kept as its text (`RawValue`) is checked as any value is skipped.
        map.next_value::<de::IgnoredAny>().map(|_| ())
    }

    fn strings<A: MapAccess<'de>>(map: &mut A) -> Result<Vec<String>, A::Error> {
        or_default::<_, CheckedStrings>(map).map(|_| Vec::new())
    }
}

/// A JSON object, checked as [`RawMap`] would read it (keys as strings, values of any
/// kind), and dropped.
#[derive(Default)]
struct CheckedObject;

impl<'de> Deserialize<'de> for CheckedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CheckedObject)
    }
}

impl<'de> Visitor<'de> for CheckedObject {
    type Value = CheckedObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_key::<std::borrow::Cow<'de, str>>()?.is_some() {
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(CheckedObject)
    }
}

/// Decodes a record, the members its head does not need as `M` says (made, or only
/// checked); `now` gives the time of a missing timestamp, asked at most once.
struct RecordVisitor<F, M> {
    now: F,
    members: std::marker::PhantomData<M>,
}

impl<F: FnOnce() -> TaskTime, M> RecordVisitor<F, M> {
    fn new(now: F) -> Self {
        RecordVisitor {
            now,
            members: std::marker::PhantomData,
        }
    }
}

/// `null` reads as the type's default, as pydantic's defaults fill an absent field.
fn or_default<'de, A, T>(map: &mut A) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(map.next_value::<Option<T>>()?.unwrap_or_default())
}

impl<'de, F, M> Visitor<'de> for RecordVisitor<F, M>
where
    F: FnOnce() -> TaskTime,
    M: Members<'de>,
{
    type Value = TaskRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskRecord, A::Error> {
        let mut task_id: Option<String> = None;
        let mut service: Option<String> = None;
        let mut user_id: Option<String> = None;
        let mut status: Option<TaskStatus> = None;
        let mut parameters = RawMap::new();
        let mut jobs: Vec<String> = Vec::new();
        let mut active_jobs: Option<Vec<String>> = None;
        let mut has_jobs = false;
        let mut created_at: Option<TaskTime> = None;
        let mut updated_at: Option<TaskTime> = None;
        let mut logs = Vec::new();
        let mut result = TaskResult::default();
        let mut priority = PriorityLevel::Low;
        let mut extra = RawMap::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "task_id" => task_id = Some(map.next_value()?),
                "service" => service = Some(map.next_value()?),
                "user_id" => user_id = Some(map.next_value()?),
                "status" => status = Some(map.next_value()?),
                "parameters" => parameters = M::object(&mut map)?,
                "jobs" => {
                    jobs = M::strings(&mut map)?;
                    has_jobs = true;
                }
                "active_jobs" => active_jobs = Some(M::strings(&mut map)?),
                "created_at" => created_at = map.next_value()?,
                "updated_at" => updated_at = map.next_value()?,
                "logs" => logs = M::strings(&mut map)?,
                "result" => result = or_default(&mut map)?,
                "priority" => priority = or_default(&mut map)?,
                other => M::unknown(&mut extra, other, &mut map)?,
            }
        }
        let jobs_key = match (has_jobs, &active_jobs) {
            (false, None) => JobsKey::New,
            (true, None) => JobsKey::Jobs,
            (false, Some(_)) => JobsKey::ActiveJobs,
            (true, Some(_)) => JobsKey::Both,
        };
        let jobs = active_jobs.unwrap_or(jobs);
        let (created_at, updated_at) = match (created_at, updated_at) {
            (Some(created_at), Some(updated_at)) => (created_at, updated_at),
            (created_at, updated_at) => {
                let now = (self.now)();
                (created_at.unwrap_or(now), updated_at.unwrap_or(now))
            }
        };
        Ok(TaskRecord {
            task_id: task_id.ok_or_else(|| de::Error::missing_field("task_id"))?,
            service: service.ok_or_else(|| de::Error::missing_field("service"))?,
            user_id: user_id.ok_or_else(|| de::Error::missing_field("user_id"))?,
            status: status.ok_or_else(|| de::Error::missing_field("status"))?,
            parameters,
            jobs,
            created_at,
            updated_at,
            logs,
            result,
            priority,
            extra,
            jobs_key,
        })
    }
}
