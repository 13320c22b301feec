//! The task record and its parts, encoded exactly as the Python package encodes them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::raw::RawMap;
use crate::time::{Clock, SystemClock, TaskTime, Zone};

/// Where a task is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Registered, not yet handed to a scheduler.
    Pending,
    /// Being handed to a scheduler.
    Dispatching,
    /// Running.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Someone asked for the task to stop.
    CancelRequested,
    /// Stopped on request.
    Cancelled,
}

impl TaskStatus {
    /// All seven statuses, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Dispatching,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::CancelRequested,
        TaskStatus::Cancelled,
    ];

    /// The wire name: `pending`, `cancel_requested`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Dispatching => "dispatching",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::CancelRequested => "cancel_requested",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// True for the statuses a task never leaves by itself: completed, failed, cancelled.
    ///
    /// ```
    /// use task_state_core::TaskStatus;
    /// assert!(TaskStatus::Failed.is_terminal());
    /// assert!(!TaskStatus::CancelRequested.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = Error;

    /// Parses a wire name.
    fn from_str(s: &str) -> Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                field: "status",
                value: s.chars().take(64).collect(),
                reason: "expected one of pending, dispatching, running, completed, failed, \
                         cancel_requested, cancelled"
                    .to_owned(),
            })
    }
}

/// A task's scheduling priority.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PriorityLevel {
    /// The default.
    #[default]
    Low,
    /// Ahead of low.
    High,
}

impl PriorityLevel {
    /// The wire name: `low` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            PriorityLevel::Low => "low",
            PriorityLevel::High => "high",
        }
    }
}

impl fmt::Display for PriorityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PriorityLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low" => Ok(PriorityLevel::Low),
            "high" => Ok(PriorityLevel::High),
            _ => Err(Error::InvalidInput {
                field: "priority",
                value: s.chars().take(64).collect(),
                reason: "expected low or high".to_owned(),
            }),
        }
    }
}

/// What the workload reported: a pod status snapshot and the launcher's combined output.
///
/// Read from a JSON object (or `null`) only. Members other than the two are kept in
/// [`TaskResult::extra`], each with its exact text, and written after them.
///
/// ```
/// use task_state_core::TaskResult;
/// let mut result = TaskResult::default();
/// result.pod_status = Some("phase=Running".to_owned());
/// result.extra.insert("exit_code", 0);
/// assert_eq!(
///     task_state_core::serde_json::to_string(&result)?,
///     r#"{"pod_status":"phase=Running","launcher_output":null,"exit_code":0}"#
/// );
/// # Ok::<(), task_state_core::serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskResult {
    /// A stringified Kubernetes pod status (often JSON text).
    pub pod_status: Option<String>,
    /// stdout and stderr of the launcher, coalesced.
    pub launcher_output: Option<String>,
    /// Members other writers added to the result, kept so that writing it back loses nothing.
    pub extra: RawMap,
}

impl Serialize for TaskResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.extra.len()))?;
        map.serialize_entry("pod_status", &self.pod_status)?;
        map.serialize_entry("launcher_output", &self.launcher_output)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TaskResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ResultVisitor)
    }
}

/// Reads a result object. Unlike a derived impl it refuses an array (which pydantic refuses
/// too), so that the Redis scripts, which check records before editing them, accept exactly
/// what this decoder accepts.
struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = TaskResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TaskResult, A::Error> {
        let mut result = TaskResult::default();
        let (mut pod_status, mut launcher_output) = (false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let (seen, field) = match key.as_ref() {
                "pod_status" => (&mut pod_status, &mut result.pod_status),
                "launcher_output" => (&mut launcher_output, &mut result.launcher_output),
                other => {
                    result.extra.keep(other, &mut map)?;
                    continue;
                }
            };
            if std::mem::replace(seen, true) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            *field = map.next_value()?;
        }
        Ok(result)
    }
}

/// The name under which a record keeps its job ids: `jobs`, or `active_jobs` in newer DMS
/// versions, or both in a record some tool wrote for readers of either version. A record is
/// written back under the names it was read with; where it has both, `active_jobs` is the
/// list (the newer frontend reads only that one) and both are written with it.
///
/// A record made by [`TaskRecord::new`] has no name yet: a repository gives it the one it is
/// configured with ([`JobsField`]) when it stores the record.
#[derive(Debug, Clone, Copy, Default, Eq)]
enum JobsKey {
    #[default]
    New,
    Jobs,
    ActiveJobs,
    Both,
}

/// A new record and one read with `jobs` are written alike, so they compare equal.
impl PartialEq for JobsKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            && matches!(self, JobsKey::Both) == matches!(other, JobsKey::Both)
    }
}

impl JobsKey {
    fn as_str(self) -> &'static str {
        match self {
            JobsKey::New | JobsKey::Jobs => "jobs",
            JobsKey::ActiveJobs | JobsKey::Both => "active_jobs",
        }
    }
}

/// The name of the job list in records a repository creates: `jobs` (the seed document's,
/// the default) or `active_jobs` (newer DMS frontends, which ignore `jobs`). Set with
/// `DMS_TASK_JOBS_FIELD`. A record that already has one of the members keeps it.
///
/// ```
/// use task_state_core::JobsField;
/// assert_eq!("active_jobs".parse::<JobsField>().unwrap(), JobsField::ActiveJobs);
/// assert_eq!(JobsField::default().as_str(), "jobs");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum JobsField {
    /// `jobs`.
    #[default]
    Jobs,
    /// `active_jobs`.
    ActiveJobs,
}

impl JobsField {
    /// The variable that sets it.
    pub const VAR: &'static str = "DMS_TASK_JOBS_FIELD";

    /// The member name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobsField::Jobs => "jobs",
            JobsField::ActiveJobs => "active_jobs",
        }
    }
}

impl fmt::Display for JobsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobsField {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "jobs" => Ok(JobsField::Jobs),
            "active_jobs" => Ok(JobsField::ActiveJobs),
            other => Err(Error::InvalidInput {
                field: "jobs field",
                value: other.chars().take(64).collect(),
                reason: "expected jobs or active_jobs".to_owned(),
            }),
        }
    }
}

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
        serde_json::from_str(json).map_err(|e| Error::decode("task:?", e.to_string()))
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
        let visitor = RecordVisitor::new(|| TaskTime::now(clock, zone));
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
        deserializer.deserialize_map(RecordVisitor::new(|| {
            TaskTime::now(&SystemClock, &Zone::configured())
        }))
    }
}

/// Decodes a record; `now` gives the time of a missing timestamp, asked at most once.
struct RecordVisitor<F> {
    now: F,
}

impl<F: FnOnce() -> TaskTime> RecordVisitor<F> {
    fn new(now: F) -> Self {
        RecordVisitor { now }
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

impl<'de, F: FnOnce() -> TaskTime> Visitor<'de> for RecordVisitor<F> {
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
                "parameters" => parameters = or_default(&mut map)?,
                "jobs" => {
                    jobs = or_default(&mut map)?;
                    has_jobs = true;
                }
                "active_jobs" => active_jobs = Some(or_default(&mut map)?),
                "created_at" => created_at = map.next_value()?,
                "updated_at" => updated_at = map.next_value()?,
                "logs" => logs = or_default(&mut map)?,
                "result" => result = or_default(&mut map)?,
                "priority" => priority = or_default(&mut map)?,
                other => extra.keep(other, &mut map)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","parameters":{"retries":3,"ratio":0.30000000000000004},"jobs":["slurm-500"],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":["2025-11-17T10:00:16.515926+09:00,worker started"],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;

    #[test]
    fn spec_example_round_trips_byte_for_byte() {
        let record = TaskRecord::from_json(SPEC_EXAMPLE).unwrap();
        assert_eq!(record.task_id, "5");
        assert_eq!(record.jobs, ["slurm-500"]);
        assert_eq!(record.updated_at.to_string(), "2025-11-17T10:00:16+09:00");
        assert_eq!(record.to_json(), SPEC_EXAMPLE);
    }

    #[test]
    fn parameters_keep_every_digit_and_shape() {
        let params = r#"{"a":0.30000000000000004,"b":12345678901234567890,"c":-1e-300,"d":123456789012345678901234567890,"e":[],"f":{},"g":[1,[2,{"h":null}]],"i":"한국어 ✓ \"q\"","j":1e+16,"k":true}"#;
        let json = SPEC_EXAMPLE.replace(r#"{"retries":3,"ratio":0.30000000000000004}"#, params);
        let record = TaskRecord::from_json(&json).unwrap();
        assert_eq!(record.to_json(), json);
    }

    #[test]
    fn missing_optional_fields_get_defaults() {
        let json = r#"{"task_id":"1","service":"s","user_id":"u","status":"pending"}"#;
        let record = TaskRecord::from_json(json).unwrap();
        assert!(record.parameters.is_empty() && record.jobs.is_empty() && record.logs.is_empty());
        assert_eq!(record.result, TaskResult::default());
        assert_eq!(record.priority, PriorityLevel::Low);
    }

    #[test]
    fn nulls_read_as_defaults() {
        let json = r#"{"task_id":"1","service":"s","user_id":"u","status":"pending","parameters":null,"jobs":null,"logs":null,"result":null,"priority":null}"#;
        let record = TaskRecord::from_json(json).unwrap();
        assert!(record.parameters.is_empty() && record.jobs.is_empty());
    }

    #[test]
    fn active_jobs_reads_as_jobs_and_is_written_back_under_its_name() {
        let json = SPEC_EXAMPLE.replace(r#""jobs":"#, r#""active_jobs":"#);
        let record = TaskRecord::from_json(&json).unwrap();
        assert_eq!(record.jobs, ["slurm-500"]);
        assert_eq!(record.jobs_field(), "active_jobs");
        assert_eq!(record.to_json(), json);
    }

    #[test]
    fn a_record_with_jobs_and_active_jobs_reads_active_jobs_and_writes_both() {
        let json = SPEC_EXAMPLE.replace(
            r#""jobs":["slurm-500"]"#,
            r#""jobs":["old"],"active_jobs":["slurm-500"]"#,
        );
        let mut record = TaskRecord::from_json(&json).unwrap();
        assert_eq!(record.jobs, ["slurm-500"]);
        record.jobs = vec!["slurm-501".to_owned()];
        assert!(record
            .to_json()
            .contains(r#""jobs":["slurm-501"],"active_jobs":["slurm-501"]"#));
        // The order in the text does not matter.
        let json = SPEC_EXAMPLE.replace(
            r#""jobs":["slurm-500"]"#,
            r#""active_jobs":["slurm-500"],"jobs":["old"]"#,
        );
        assert_eq!(TaskRecord::from_json(&json).unwrap().jobs, ["slurm-500"]);
    }

    #[test]
    fn result_is_an_object_or_null_with_each_field_once() {
        let with = |result: &str| {
            SPEC_EXAMPLE.replace(r#"{"pod_status":null,"launcher_output":null}"#, result)
        };
        let record =
            TaskRecord::from_json(&with(r#"{"launcher_output":"x","extra":[1]}"#)).unwrap();
        assert_eq!(record.result.launcher_output.as_deref(), Some("x"));
        assert_eq!(record.result.pod_status, None);
        for bad in [
            "[]",
            r#"["a","b"]"#,
            r#"{"pod_status":"a","pod_status":"b"}"#,
            r#"{"pod_status":1}"#,
            r#""x""#,
        ] {
            assert!(
                matches!(TaskRecord::from_json(&with(bad)), Err(Error::Decode { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = SPEC_EXAMPLE.replace(
            r#","priority":"low"}"#,
            r#","priority":"high","owner_team":{"name":"vision","ids":[1,2.50]},"flag":null}"#,
        );
        let mut record = TaskRecord::from_json(&json).unwrap();
        assert_eq!(record.extra.len(), 2);
        assert_eq!(
            record.extra["owner_team"].get(),
            r#"{"name":"vision","ids":[1,2.50]}"#
        );
        assert_eq!(record.to_json(), json);
        record.status = TaskStatus::Completed;
        assert!(record
            .to_json()
            .ends_with(r#","owner_team":{"name":"vision","ids":[1,2.50]},"flag":null}"#));
    }

    #[test]
    fn values_kept_as_text_keep_any_number_escape_and_depth() {
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let params = format!(r#"{{"a":1e400,"b":-0,"c":1E+2,"d":"\ud800 \u00e9\/","e":{deep}}}"#);
        let json = SPEC_EXAMPLE
            .replace(r#"{"retries":3,"ratio":0.30000000000000004}"#, &params)
            .replace(
                r#""launcher_output":null}"#,
                &format!(r#""launcher_output":null,"exit":{deep},"raw":"\udc00"}}"#),
            )
            .replace(
                r#","priority":"low"}"#,
                &format!(r#","priority":"low","later":{deep},"x":"\ud83d x"}}"#),
            );
        let record = TaskRecord::from_json_at("task:5", json.as_bytes()).unwrap();
        assert_eq!(record.to_json(), json);
        assert_eq!(record.parameters["a"].get(), "1e400");
        assert_eq!(record.result.extra["raw"].get(), r#""\udc00""#);
        assert_eq!(record.extra["later"].get(), deep);
    }

    #[test]
    fn strings_the_model_decodes_must_pair_their_surrogates_and_be_utf8() {
        let bad_texts = [
            SPEC_EXAMPLE.replace(r#""task_id":"5""#, r#""task_id":"\ud800""#),
            SPEC_EXAMPLE.replace(r#""task_id":"5""#, r#""task_id":"5","\udc00":1"#),
            SPEC_EXAMPLE.replace(r#"{"retries":3"#, r#"{"\ud800x":3"#),
            SPEC_EXAMPLE.replace(r#""pod_status":null"#, r#""pod_status":"\ud800""#),
            SPEC_EXAMPLE.replace(r#""pod_status":null"#, r#""\ud800":null"#),
            SPEC_EXAMPLE.replace(r#""slurm-500""#, r#""\udc00\ud800""#),
        ];
        for bad in &bad_texts {
            assert!(
                matches!(TaskRecord::from_json(bad), Err(Error::Decode { .. })),
                "{bad}"
            );
        }
        // Text kept as it is must be UTF-8 too.
        for (from, to) in [
            (&br#""retries":3"#[..], &b"\"retries\":\"\xff\""[..]),
            (
                br#""pod_status":null"#,
                b"\"pod_status\":null,\"x\":\"\xc0\xaf\"",
            ),
            (
                br#","priority":"low""#,
                b",\"priority\":\"low\",\"x\":[\"\xed\xa0\x80\"]",
            ),
        ] {
            let at = SPEC_EXAMPLE
                .find(std::str::from_utf8(from).unwrap())
                .unwrap();
            let mut bytes = SPEC_EXAMPLE.as_bytes()[..at].to_vec();
            bytes.extend_from_slice(to);
            bytes.extend_from_slice(&SPEC_EXAMPLE.as_bytes()[at + from.len()..]);
            assert!(
                matches!(
                    TaskRecord::from_json_at("task:5", &bytes),
                    Err(Error::Decode { .. })
                ),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn a_result_keeps_its_other_members_in_order() {
        let json = SPEC_EXAMPLE.replace(
            r#"{"pod_status":null,"launcher_output":null}"#,
            r#"{"exit_code":0,"pod_status":"x","ratio":1.50,"launcher_output":null}"#,
        );
        let mut record = TaskRecord::from_json(&json).unwrap();
        assert_eq!(
            record.result.extra.to_string(),
            r#"{"exit_code":0,"ratio":1.50}"#
        );
        record.result.launcher_output = Some("done".to_owned());
        assert!(record.to_json().contains(
            r#""result":{"pod_status":"x","launcher_output":"done","exit_code":0,"ratio":1.50}"#
        ));
    }

    #[test]
    fn all_statuses_round_trip() {
        for status in TaskStatus::ALL {
            let json = SPEC_EXAMPLE.replace("\"running\"", &format!("\"{status}\""));
            let record = TaskRecord::from_json(&json).unwrap();
            assert_eq!(record.status, status);
            assert_eq!(record.to_json(), json);
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
        }
        assert!(matches!(
            "done".parse::<TaskStatus>(),
            Err(Error::InvalidInput {
                field: "status",
                ..
            })
        ));
    }

    #[test]
    fn non_ascii_is_raw_utf8_and_control_characters_are_escaped() {
        let mut record = TaskRecord::from_json(SPEC_EXAMPLE).unwrap();
        record
            .logs
            .push("2025-11-17T10:00:16+09:00,시작 ✓\n\t\u{1}".to_owned());
        let json = record.to_json();
        assert!(json.contains(r#"시작 ✓\n\t\u0001""#), "{json}");
        assert_eq!(TaskRecord::from_json(&json).unwrap(), record);
    }

    #[test]
    fn malformed_records_are_decode_errors() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"task_id":"1"}"#,
            r#"{"task_id":"1","service":"s","user_id":"u","status":"lost"}"#,
            r#"{"task_id":"1","service":"s","user_id":"u","status":"pending","created_at":"soon"}"#,
        ] {
            assert!(
                matches!(TaskRecord::from_json(bad), Err(Error::Decode { .. })),
                "{bad}"
            );
        }
        let err = TaskRecord::from_json_at("task:9", b"{").unwrap_err();
        assert!(err.to_string().contains("task:9"));
    }
}
