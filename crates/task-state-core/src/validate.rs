//! Checks on the names that become parts of Redis keys.

use crate::error::{Error, Result};

/// The longest task id, service or user id accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

/// Checks a task id, service or user id before it becomes part of a key.
///
/// A name is rejected when it is empty, longer than [`MAX_NAME_BYTES`], or contains `:` or a
/// control character: `task:7:metadata` or `index:service:a:user:b` would otherwise name
/// another key of the layout.
///
/// # Errors
/// [`Error::InvalidInput`] naming the field.
///
/// ```
/// use task_state_core::{validate_name, Error};
/// assert!(validate_name("task id", "42").is_ok());
/// let err = validate_name("task id", "7:metadata").unwrap_err();
/// assert!(matches!(err, Error::InvalidInput { field: "task id", .. }));
/// ```
pub fn validate_name(field: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > MAX_NAME_BYTES {
        Some(format!("longer than {MAX_NAME_BYTES} bytes"))
    } else if value.contains(':') {
        Some("must not contain ':'".to_owned())
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidInput {
            field,
            value: value.chars().take(64).collect(),
            reason,
        }),
    }
}

/// [`validate_name`] for a task id.
///
/// # Errors
/// [`Error::InvalidInput`] with field `task id`.
pub fn validate_task_id(task_id: &str) -> Result<()> {
    validate_name("task id", task_id)
}

/// Checks the three names of a record.
///
/// # Errors
/// [`Error::InvalidInput`] for the first bad one.
pub fn validate_record(record: &crate::TaskRecord) -> Result<()> {
    validate_name("task id", &record.task_id)?;
    validate_name("service", &record.service)?;
    validate_name("user id", &record.user_id)
}

/// Checks the statuses a conditional transition may leave: at least one.
///
/// # Errors
/// [`Error::InvalidInput`] with field `from` when `from` is empty.
///
/// ```
/// use task_state_core::{validate_transition_from, Error, TaskStatus};
/// assert!(validate_transition_from(&[TaskStatus::Running]).is_ok());
/// assert!(matches!(validate_transition_from(&[]), Err(Error::InvalidInput { field: "from", .. })));
/// ```
pub fn validate_transition_from(from: &[crate::TaskStatus]) -> Result<()> {
    if from.is_empty() {
        return Err(Error::InvalidInput {
            field: "from",
            value: "[]".to_owned(),
            reason: "name at least one status to move from".to_owned(),
        });
    }
    Ok(())
}

/// Orders task ids as the DMS frontend shows them: numeric ids by value, before any
/// other id; other ids by text.
///
/// ```
/// let mut ids = vec!["10", "9", "b", "a", "100"];
/// ids.sort_by(|a, b| task_state_core::compare_task_ids(a, b));
/// assert_eq!(ids, ["9", "10", "100", "a", "b"]);
/// ```
pub fn compare_task_ids(a: &str, b: &str) -> std::cmp::Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => {
            let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_that_collide_with_the_layout() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for bad in [
            "",
            "7:metadata",
            "a:user:b",
            "tab\there",
            "nl\n",
            "\u{7f}",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    validate_name("service", bad),
                    Err(Error::InvalidInput {
                        field: "service",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        for good in [
            "1",
            "render-v2",
            "한국어",
            "a b",
            "x".repeat(MAX_NAME_BYTES).as_str(),
        ] {
            assert!(validate_name("service", good).is_ok(), "{good:?}");
        }
    }
}
