//! A task's result: the two members the package knows, and any others kept as text.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::raw::RawMap;

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
