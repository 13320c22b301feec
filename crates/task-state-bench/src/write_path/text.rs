//! The edit of a record's text: the new value spliced in where the old one stood, every
//! other byte kept.

use anyhow::Result;
use serde::Deserialize;
use task_state_core::serde_json::{self, value::RawValue};
use task_state_core::{format_log_entry_at, json_string, TaskTime};

use super::*;

/// The members of a record an edit touches, each as the exact text it was read with (a
/// slice of the record: where it stands is where its bytes are).
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    updated_at: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    logs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    jobs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    active_jobs: Option<&'a RawValue>,
}

/// The members of a result an edit sets.
#[derive(Deserialize)]
struct ResultMembers<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    pod_status: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    launcher_output: Option<&'a RawValue>,
}

/// A member that is there, `null` included (an `Option` alone reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Byte edits of a text: (from, to, replacement), `from == to` inserting.
#[derive(Default)]
struct Splice(Vec<(usize, usize, String)>);

impl Splice {
    /// Replaces the value `raw` (a slice of `text`) with `json`.
    fn replace(&mut self, text: &str, raw: &RawValue, json: String) {
        let from = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        self.0.push((from, from + raw.get().len(), json));
    }

    /// Adds `"name":json` to the object `object` (a slice of `text`) before its `}`.
    fn add_member(&mut self, text: &str, object: &str, name: &str, json: &str) {
        let end = object.as_ptr() as usize - text.as_ptr() as usize + object.len() - 1;
        let empty = object[1..object.len() - 1].trim().is_empty();
        let comma = if empty { "" } else { "," };
        self.0
            .push((end, end, format!("{comma}{}:{json}", json_string(name))));
    }

    /// Sets the member `name` of the record `text` to `json`: in place of its value `raw`
    /// where it has one, else added at the end of the record.
    fn set(&mut self, text: &str, raw: Option<&RawValue>, name: &str, json: String) {
        match raw {
            Some(raw) => self.replace(text, raw, json),
            None => self.add_member(text, text.trim(), name, &json),
        }
    }

    /// Adds `items` (JSON values separated by commas) to the end of the array `array` (a
    /// slice of `text`), before its `]`.
    fn extend_array(&mut self, text: &str, array: &str, items: &str) {
        let end = array.as_ptr() as usize - text.as_ptr() as usize + array.len() - 1;
        let empty = array[1..array.len() - 1].trim().is_empty();
        let comma = if empty { "" } else { "," };
        self.0.push((end, end, format!("{comma}{items}")));
    }

    fn apply(mut self, text: &str) -> String {
        self.0.sort_by_key(|e| (e.0, e.1));
        let extra: usize = self.0.iter().map(|e| e.2.len()).sum();
        let mut out = String::with_capacity(text.len() + extra);
        let mut at = 0;
        for (from, to, json) in self.0 {
            out.push_str(&text[at..from]);
            out.push_str(&json);
            at = to;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// `text` with `edit` applied at `now`, every other byte kept; the reason where the
/// prototype leaves the edit to the script.
pub(super) fn edited(
    text: &str,
    edit: &Edit,
    now: TaskTime,
) -> std::result::Result<String, &'static str> {
    let members: Members<'_> = serde_json::from_str(text).map_err(|_| "a member is given twice")?;
    let mut splice = Splice::default();
    let stamp = json_string(&now.to_string());
    splice.set(text, members.updated_at, "updated_at", stamp);
    let mut entries = Vec::new();
    match edit {
        Edit::Save(_) => return Err("a save is not an edit"),
        Edit::Status { to, entry, .. } => {
            let status = json_string(to.as_str());
            splice.set(text, members.status, "status", status);
            entries.extend(entry.iter().filter(|m| !m.is_empty()));
        }
        Edit::Append(messages) => entries.extend(messages),
        Edit::Result {
            pod_status,
            launcher_output,
        } => {
            let given = [
                ("pod_status", pod_status),
                ("launcher_output", launcher_output),
            ];
            set_result(&mut splice, text, members.result, given)?;
        }
        Edit::Jobs(ids) => set_jobs(&mut splice, text, &members, ids)?,
    }
    append_logs(&mut splice, text, members.logs, &entries, now);
    Ok(splice.apply(text))
}

/// Sets the `given` members of the result `result` of the record `text` (each a name and
/// its new value, `None` to keep it), the result's other members kept; a result that is not
/// an object (or none) becomes one of the given members alone, `null` for those not given.
fn set_result(
    splice: &mut Splice,
    text: &str,
    result: Option<&RawValue>,
    given: [(&str, &Option<String>); 2],
) -> std::result::Result<(), &'static str> {
    let Some(object) = result.filter(|r| r.get().starts_with('{')) else {
        let field = |v: &Option<String>| v.as_deref().map_or("null".to_owned(), json_string);
        let [(_, pod_status), (_, launcher_output)] = given;
        let object = format!(
            "{{\"pod_status\":{},\"launcher_output\":{}}}",
            field(pod_status),
            field(launcher_output)
        );
        splice.set(text, result, "result", object);
        return Ok(());
    };
    let fields: ResultMembers<'_> =
        serde_json::from_str(object.get()).map_err(|_| "a member is given twice")?;
    let found = [fields.pod_status, fields.launcher_output];
    for ((name, value), raw) in given.into_iter().zip(found) {
        let Some(value) = value else { continue };
        match raw {
            Some(raw) => splice.replace(text, raw, json_string(value)),
            None => splice.add_member(text, object.get(), name, &json_string(value)),
        }
    }
    Ok(())
}

/// Sets the job ids `ids` where the record `text` keeps them: in `jobs` and/or
/// `active_jobs`, whichever it has, else in a new `jobs`.
fn set_jobs(
    splice: &mut Splice,
    text: &str,
    members: &Members<'_>,
    ids: &[String],
) -> std::result::Result<(), &'static str> {
    let json = serde_json::to_string(ids).map_err(|_| "job ids")?;
    if members.jobs.is_none() && members.active_jobs.is_none() {
        splice.set(text, None, "jobs", json);
        return Ok(());
    }
    for (raw, name) in [(members.jobs, "jobs"), (members.active_jobs, "active_jobs")] {
        if raw.is_some() {
            splice.set(text, raw, name, json.clone());
        }
    }
    Ok(())
}

/// Appends log entries of `messages`, stamped `now`, to the logs `logs` of the record `text`;
/// logs that are not an array (or none) become an array of the new entries alone.
fn append_logs(
    splice: &mut Splice,
    text: &str,
    logs: Option<&RawValue>,
    messages: &[&String],
    now: TaskTime,
) {
    if messages.is_empty() {
        return;
    }
    let lines: Vec<String> = messages
        .iter()
        .map(|m| json_string(&format_log_entry_at(m, now)))
        .collect();
    match logs.filter(|l| l.get().starts_with('[')) {
        Some(array) => splice.extend_array(text, array.get(), &lines.join(",")),
        None => splice.set(text, logs, "logs", format!("[{}]", lines.join(","))),
    }
}
