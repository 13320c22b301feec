//! Log entries: `<timestamp>,<message>`.

use crate::error::{Error, Result};
use crate::time::{Clock, SystemClock, TaskTime, Zone};

/// Formats a log entry stamped with the system clock's now in `zone`, as the Python
/// package's `format_log_entry` does.
///
/// ```
/// use task_state_core::{format_log_entry, LogEntry, Zone};
/// let entry = format_log_entry("worker started", &Zone::named("Asia/Seoul").unwrap());
/// assert!(entry.ends_with("+09:00,worker started"));
/// assert_eq!(LogEntry::parse(&entry).unwrap().message, "worker started");
/// ```
pub fn format_log_entry(message: &str, zone: &Zone) -> String {
    format_log_entry_at(message, TaskTime::now(&SystemClock, zone))
}

/// Formats a log entry stamped with `clock`'s now in `zone`.
pub fn format_log_entry_with(message: &str, clock: &dyn Clock, zone: &Zone) -> String {
    format_log_entry_at(message, TaskTime::now(clock, zone))
}

/// Formats a log entry stamped `at`. The message is kept unchanged: commas, newlines and
/// any Unicode included.
///
/// ```
/// use task_state_core::{format_log_entry_at, TaskTime};
/// let at: TaskTime = "2025-11-17T10:00:16.515926+09:00".parse().unwrap();
/// assert_eq!(format_log_entry_at("a, b", at), "2025-11-17T10:00:16.515926+09:00,a, b");
/// ```
pub fn format_log_entry_at(message: &str, at: TaskTime) -> String {
    format!("{at},{message}")
}

/// One log entry read back: when it was written and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the entry was written.
    pub at: TaskTime,
    /// The message, unchanged.
    pub message: String,
}

impl LogEntry {
    /// Splits an entry at its first comma and parses the timestamp.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there is no comma or the part before it is not a
    /// timestamp.
    ///
    /// ```
    /// use task_state_core::LogEntry;
    /// let entry = LogEntry::parse("2025-11-17T10:00:16+09:00,done, at last\n").unwrap();
    /// assert_eq!(entry.message, "done, at last\n");
    /// assert_eq!(entry.at.to_string(), "2025-11-17T10:00:16+09:00");
    /// ```
    pub fn parse(entry: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidInput {
            field: "log entry",
            value: entry.chars().take(64).collect(),
            reason,
        };
        let (stamp, message) = entry
            .split_once(',')
            .ok_or_else(|| invalid("expected <timestamp>,<message>".to_owned()))?;
        let at = stamp.parse().map_err(|e| invalid(format!("{e}")))?;
        Ok(LogEntry {
            at,
            message: message.to_owned(),
        })
    }
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.at, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    #[test]
    fn entry_uses_the_clock_and_zone() {
        let clock = ManualClock::new("2025-11-17T01:00:16.515926Z".parse().unwrap());
        let zone = Zone::named("Asia/Seoul").unwrap();
        assert_eq!(
            format_log_entry_with("worker started", &clock, &zone),
            "2025-11-17T10:00:16.515926+09:00,worker started"
        );
    }

    #[test]
    fn messages_with_commas_newlines_and_unicode_round_trip() {
        let at: TaskTime = "2025-11-17T10:00:16+09:00".parse().unwrap();
        for message in ["", "a,b,c", "line1\nline2", "한국어, ✓", ",leading"] {
            let entry = format_log_entry_at(message, at);
            let back = LogEntry::parse(&entry).unwrap();
            assert_eq!(back.message, message);
            assert_eq!(back.at, at);
            assert_eq!(back.to_string(), entry);
        }
    }

    #[test]
    fn malformed_entries_are_invalid_input() {
        for bad in ["no comma", "not a time,message", ",message"] {
            assert!(
                matches!(
                    LogEntry::parse(bad),
                    Err(Error::InvalidInput {
                        field: "log entry",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
