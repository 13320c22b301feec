//! Reading the replies of commands and scripts: values as text, what a record-editing
//! script answered.

use fred::prelude::Value;
use task_state_core::{Error, Result, TaskStatus};

use crate::keys;
use crate::scripts::Script;

/// A reply value as text: a bulk or simple string, or an integer.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// What a record-editing script answered.
pub(crate) enum Outcome {
    Missing,
    Conflict(String),
    Done(Option<String>),
}

impl Outcome {
    /// Reads `script`'s reply: `{'applied', record}` (the record empty for an `ack`),
    /// `{'missing'}` or `{'conflict', status}`.
    pub(crate) fn of(reply: Value, script: &Script) -> Result<Outcome> {
        let mut items = match reply {
            Value::Array(items) => items.into_iter(),
            other => {
                return Err(Error::backend(format!(
                    "unexpected reply from script {}: {other:?}",
                    script.name
                )))
            }
        };
        let code = items.next().and_then(|v| text(&v));
        let payload = items.next().and_then(|v| text(&v));
        match code.as_deref() {
            Some("missing") => Ok(Outcome::Missing),
            Some("conflict") => Ok(Outcome::Conflict(payload.unwrap_or_default())),
            Some("applied") => Ok(Outcome::Done(payload.filter(|p| !p.is_empty()))),
            _ => Err(Error::backend(format!(
                "unexpected reply from script {}",
                script.name
            ))),
        }
    }
}

/// The two integers of a `remove.lua` reply (0 for what is not one).
pub(crate) fn int_pair(value: &Value) -> (i64, i64) {
    let int = |v: Option<&Value>| match v {
        Some(Value::Integer(i)) => *i,
        Some(other) => text(other).and_then(|s| s.parse().ok()).unwrap_or(0),
        None => 0,
    };
    match value {
        Value::Array(items) => (int(items.first()), int(items.get(1))),
        _ => (0, 0),
    }
}

/// The error of a script that found the task in status `current`, not one of `expected`.
pub(crate) fn conflict(task_id: &str, current: &str, expected: &[TaskStatus]) -> Error {
    match current.parse::<TaskStatus>() {
        Ok(current) => Error::Conflict {
            task_id: task_id.to_owned(),
            current,
            expected: expected.to_vec(),
        },
        Err(_) => Error::decode(keys::record(task_id), format!("unknown status {current:?}")),
    }
}
