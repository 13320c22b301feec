//! How record fields read on a page. The one place that touches `parameters` and `extra`,
//! whose types may change: both are read through their JSON text.

use task_state_core::jiff::Timestamp;
use task_state_core::{LogEntry, TaskRecord, TaskTime};

/// `value` (anything that serializes as JSON) pretty-printed; numbers keep their digits.
fn pretty(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(parsed) => serde_json::to_string_pretty(&parsed).unwrap_or(text),
        Err(_) => text,
    }
}

/// The parameters, pretty-printed.
pub(crate) fn parameters(record: &TaskRecord) -> String {
    pretty(&record.parameters)
}

/// The members this version does not know, pretty-printed, or `None` when there are none.
pub(crate) fn extra(record: &TaskRecord) -> Option<String> {
    let text = pretty(&record.extra);
    (text != "{}").then_some(text)
}

/// A time as the CLI's tables show it: local time to the second.
pub(crate) fn short_time(at: &TaskTime) -> String {
    at.local().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A moment of the console's own (a count, a check), in UTC to the second.
pub(crate) fn utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A log entry split into its time and message; an entry that does not parse is all
/// message.
pub(crate) fn log_line(raw: &str) -> (String, String) {
    match LogEntry::parse(raw) {
        Ok(entry) => (entry.at.to_string(), entry.message),
        Err(_) => (String::new(), raw.to_owned()),
    }
}
