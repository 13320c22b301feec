//! The layout hint on the client's side (the rest of it is `lua/lib/hint.lua`): where the
//! members a quick edit touches stand in a record this crate encoded, so that a `save` can
//! leave a layout hint and the first status change or append after it need not scan the
//! record. The client makes the whole hint, its SHA1 included, so
//! that the server does not hash the record twice; a hint whose SHA1 were wrong would only
//! fail to be trusted.
//!
//! The record is [`TaskRecord::to_json`](task_state_core::TaskRecord::to_json)'s output:
//! compact JSON, every known member once at the top level. The walk below reads only such
//! text; on anything else it gives no positions, and the save leaves no hint.

/// The field separator of a layout hint.
const HINT_SEP: char = '\u{1f}';

/// The layout hint (version 3, as `hint_for` in `lua/lib/hint.lua` makes it) for the record
/// `json` of `service` and `user_id`, which this crate encoded; empty when it has no log
/// entry (see [`quick_edit_positions`]).
pub(crate) fn save_hint(json: &str, service: &str, user_id: &str) -> String {
    let Some([u_from, u_to, last, s_from, s_to]) = quick_edit_positions(json) else {
        return String::new();
    };
    let rest = format!(
        "{u_from}{HINT_SEP}{u_to}{HINT_SEP}{last}{HINT_SEP}{s_from}{HINT_SEP}{s_to}\
         {HINT_SEP}{service}{HINT_SEP}{user_id}"
    );
    let inner = fred::util::sha1_hash(json);
    let digest = fred::util::sha1_hash(&format!("{inner}{HINT_SEP}{rest}"));
    format!("v3{HINT_SEP}{digest}{HINT_SEP}{rest}")
}

/// The positions a layout hint keeps, as Lua counts them (1-based, inclusive):
/// `[u_from, u_to, last, s_from, s_to]`, `updated_at`'s value, the last byte of the last log
/// entry, and the status's value; `None` when the record has no log entry (the hint says
/// where the last one ends) or the text is not a compact object.
fn quick_edit_positions(json: &str) -> Option<[usize; 5]> {
    let members = top_level_members(json.as_bytes())?;
    let value = |name: &str| {
        members
            .iter()
            .rev()
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, v)| v.clone())
    };
    let (updated, logs, status) = (value("updated_at")?, value("logs")?, value("status")?);
    let bytes = json.as_bytes();
    // A non-empty array: `[` ... `"` `]`; its last entry ends just before the `]`.
    if logs.len() < 3 || bytes[logs.start] != b'[' || bytes[logs.end - 1] != b']' {
        return None;
    }
    if bytes[updated.start] != b'"' || bytes[status.start] != b'"' {
        return None;
    }
    Some([
        updated.start + 1,
        updated.end,
        logs.end - 1,
        status.start + 1,
        status.end,
    ])
}

type Range = std::ops::Range<usize>;

/// The top-level members of a compact JSON object: each key's bytes (between its quotes)
/// and the byte range of its value. `None` when the text is not a compact object.
fn top_level_members(s: &[u8]) -> Option<Vec<(&[u8], Range)>> {
    let mut members = Vec::new();
    if s.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    if s.get(i) == Some(&b'}') {
        return (i + 1 == s.len()).then_some(members);
    }
    loop {
        let key_end = string_end(s, i)?;
        let key = &s[i + 1..key_end - 1];
        // A name with an escape (`"st\u0061tus"`) is not this crate's encoding, and its
        // bytes are not its name: which member comes last under a name would be misread.
        if key.contains(&b'\\') {
            return None;
        }
        if s.get(key_end) != Some(&b':') {
            return None;
        }
        let start = key_end + 1;
        let end = value_end(s, start)?;
        members.push((key, start..end));
        match s.get(end) {
            Some(b',') => i = end + 1,
            Some(b'}') if end + 1 == s.len() => return Some(members),
            _ => return None,
        }
    }
}

/// The end (exclusive) of the JSON string that opens at `start`.
fn string_end(s: &[u8], start: usize) -> Option<usize> {
    if s.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end (exclusive) of the JSON value that starts at `start`.
fn value_end(s: &[u8], start: usize) -> Option<usize> {
    match s.get(start)? {
        b'"' => string_end(s, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i = string_end(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let len = s[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']'))?;
            (len > 0).then_some(start + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use task_state_core::serde_json::{self, json, Value};
    use task_state_core::{TaskRecord, TaskStatus};

    use super::{quick_edit_positions, save_hint};

    /// The positions, as 0-based byte ranges of the value of updated_at, the last log
    /// entry (its last byte) and the status.
    fn ranges(json: &str) -> Option<(std::ops::Range<usize>, usize, std::ops::Range<usize>)> {
        let [u_from, u_to, last, s_from, s_to] = quick_edit_positions(json)?;
        Some((u_from - 1..u_to, last - 1, s_from - 1..s_to))
    }

    fn record(params: Value, logs: Vec<String>) -> TaskRecord {
        let mut r = TaskRecord::new("7", "svc", "user", TaskStatus::Running);
        r.parameters = task_state_core::RawMap::from_serialize(&params).unwrap();
        r.logs = logs;
        r
    }

    /// Replacing the bytes where the positions say gives the record with those members
    /// changed: the positions are those of the top-level members, whatever the parameters
    /// and logs hold (nested members of the same names, brackets and quotes in strings).
    fn check(r: &TaskRecord) {
        let json = r.to_json();
        let Some((updated, last, status)) = ranges(&json) else {
            assert!(r.logs.is_empty(), "no positions for {json}");
            return;
        };
        let mut edited = String::new();
        edited.push_str(&json[..status.start]);
        edited.push_str("\"failed\"");
        edited.push_str(&json[status.end..updated.start]);
        edited.push_str("\"2030-01-01T00:00:00+09:00\"");
        edited.push_str(&json[updated.end..=last]);
        edited.push_str(",\"added\"");
        edited.push_str(&json[last + 1..]);
        let got: Value = serde_json::from_str(&edited).unwrap();
        let mut want: Value = serde_json::from_str(&json).unwrap();
        want["status"] = json!("failed");
        want["updated_at"] = json!("2030-01-01T00:00:00+09:00");
        want["logs"].as_array_mut().unwrap().push(json!("added"));
        assert_eq!(got, want, "{json}");
    }

    #[test]
    fn positions_are_those_of_the_top_level_members() {
        check(&record(
            json!({"updated_at": "x", "logs": ["]\"", {"status": "q"}], "s": "\\\"}"}),
            vec!["a \" ] } \\".into(), "b".into()],
        ));
        check(&record(json!({}), vec!["only".into()]));
    }

    #[test]
    fn a_record_without_log_entries_has_no_positions() {
        let empty = record(json!({}), vec![]);
        assert_eq!(quick_edit_positions(&empty.to_json()), None);
        assert_eq!(save_hint(&empty.to_json(), "svc", "user"), "");
        assert_eq!(quick_edit_positions("{\"logs\": [\"x\"]}"), None);
        assert_eq!(quick_edit_positions("not json"), None);
        // The last `status` is the escaped one: no hint rather than the first one's place.
        let escaped = r#"{"status":"a","st\u0061tus":"b","updated_at":"t","logs":["x"]}"#;
        assert_eq!(quick_edit_positions(escaped), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[\\PC\"\\\\\\[\\]{},:]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("status".to_owned()),
                            Just("updated_at".to_owned()),
                            Just("logs".to_owned()),
                            "[a-z\"\\]]{1,6}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn positions_hold_for_any_parameters_and_logs(
            params in prop::collection::btree_map("[a-z_\"\\]]{1,10}", json_value(), 0..5),
            logs in prop::collection::vec("[\\PC\"\\\\\\]\\[]{0,20}", 0..4),
        ) {
            let params = Value::Object(params.into_iter().collect());
            check(&record(params, logs));
        }
    }
}
