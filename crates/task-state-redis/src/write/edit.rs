//! The edits of the record-editing scripts, made in Rust on the record's text: the same
//! bytes replaced or inserted at the same places as `lua/lib/edit.lua` does (a member's value
//! replaced where it stands, its last occurrence; a new member after the object's last one;
//! log entries after the last one), every other byte kept.
//!
//! An edit is built from the arguments the repository gives the script (JSON already encoded
//! by the client), so that both paths write the same bytes.

use task_state_core::serde_json;

pub(crate) use super::splice::Layout;
use super::splice::{last_element, Object, Splice};

/// One mutation, as its script's arguments after the three common ones (ttl, `updated_at`,
/// reply mode) give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit<'a> {
    /// `set_status.lua`: the new status (a JSON string), the allowed current statuses (space
    /// separated; empty allows any), log entries (JSON strings).
    Status {
        to: &'a str,
        allowed: &'a str,
        entries: &'a [String],
    },
    /// `append_log.lua`: log entries (JSON strings).
    Append { entries: &'a [String] },
    /// `update_result.lua`: the fields to set (JSON strings), `None` to keep one.
    Result {
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    },
    /// `set_jobs.lua`: the ids (a JSON array) and the member a record without either gets.
    Jobs { ids: &'a str, field: &'a str },
}

impl<'a> Edit<'a> {
    /// The edit the script `name` makes with `extra`, its arguments after the common three;
    /// `None` for another script or arguments the script would refuse (it names the cause).
    pub(crate) fn of(name: &str, extra: &'a [String]) -> Option<Self> {
        let given = |v: &'a String| (!v.is_empty()).then_some(v.as_str());
        match (name, extra) {
            ("set_status", [to, allowed, entries @ ..]) => Some(Edit::Status {
                to,
                allowed,
                entries,
            }),
            ("append_log", entries) => Some(Edit::Append { entries }),
            ("update_result", [pod_status, launcher_output]) => Some(Edit::Result {
                pod_status: given(pod_status),
                launcher_output: given(launcher_output),
            }),
            ("set_jobs", [ids, field]) if field == "jobs" || field == "active_jobs" => {
                Some(Edit::Jobs { ids, field })
            }
            _ => None,
        }
    }

    /// Whether a record whose status is `current` may take this edit; a transition refused
    /// writes nothing (the script's `{'conflict', current}`).
    pub(crate) fn allows(&self, current: &str) -> bool {
        match self {
            Edit::Status { allowed, .. } if !allowed.is_empty() => {
                allowed.split_whitespace().any(|name| name == current)
            }
            _ => true,
        }
    }
}

/// Why an edit is left to the script.
pub(crate) type Unsupported = &'static str;

/// `text` (a record that decodes) with `edit` applied, `stamp` (a JSON string) its new
/// `updated_at`; every other byte kept. `Err` where the text is not what the edit can read
/// as the script reads it: the script then makes the edit (or names what is wrong).
pub(crate) fn edited(text: &str, edit: &Edit<'_>, stamp: &str) -> Result<String, Unsupported> {
    edited_at(text, None, edit, stamp).map(|(new, _)| new)
}

/// [`edited`], and where the members of the new text stand. With `layout`, where the members
/// of `text` stand (the text is one this client wrote, and kept: it reads as a JSON object),
/// the text is not read through to find them.
pub(crate) fn edited_at(
    text: &str,
    layout: Option<&Layout>,
    edit: &Edit<'_>,
    stamp: &str,
) -> Result<(String, Layout), Unsupported> {
    let parse = || serde_json::from_str::<Object<'_>>(text).map_err(|_| "not a JSON object");
    let object = match layout.and_then(|layout| Object::at(text, layout)) {
        Some(object) => {
            debug_assert_eq!(
                parse().map(|parsed| parsed.layout(text)).ok().as_ref(),
                layout,
                "a kept layout is where the members of its text stand"
            );
            object
        }
        None => parse()?,
    };
    let whole = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if !whole.starts_with('{') {
        return Err("not a JSON object");
    }
    let mut splice = Splice::of(text);
    let mut entries: &[String] = &[];
    match edit {
        Edit::Status { to, entries: e, .. } => {
            splice.set_member(&object, whole, "status", (*to).to_owned());
            entries = e;
        }
        Edit::Append { entries: e } => entries = e,
        Edit::Result {
            pod_status,
            launcher_output,
        } => set_result(&mut splice, &object, whole, *pod_status, *launcher_output)?,
        Edit::Jobs { ids, field } => {
            let present: Vec<&str> = ["jobs", "active_jobs"]
                .into_iter()
                .filter(|name| object.get(name).is_some())
                .collect();
            let names = if present.is_empty() {
                vec![*field]
            } else {
                present
            };
            for name in names {
                splice.set_member(&object, whole, name, (*ids).to_owned());
            }
        }
    }
    // `stamp`: updated_at, and created_at where it is absent or null.
    splice.set_member(&object, whole, "updated_at", stamp.to_owned());
    if object.get("created_at").is_none_or(|c| c == "null") {
        splice.set_member(&object, whole, "created_at", stamp.to_owned());
    }
    append_entries(&mut splice, &object, whole, entries)?;
    Ok(splice.apply(&object))
}

/// `append_entries`: after the last element of the logs array, or a new array where logs is
/// not an array.
fn append_entries(
    splice: &mut Splice<'_>,
    object: &Object<'_>,
    whole: &str,
    entries: &[String],
) -> Result<(), Unsupported> {
    if entries.is_empty() {
        return Ok(());
    }
    let joined = entries.join(",");
    match object.get("logs").filter(|l| l.starts_with('[')) {
        Some(logs) => {
            let start = splice.at(logs);
            match last_element(logs) {
                Some(end) => splice.insert(start + end, format!(",{joined}")),
                None => splice.insert(start + 1, joined),
            }
        }
        None => splice.set_member(object, whole, "logs", format!("[{joined}]")),
    }
    Ok(())
}

/// `set_result`: the given fields of a result object set (each where it stands, the others
/// added after its last member), or a whole new result where it is not an object.
fn set_result(
    splice: &mut Splice<'_>,
    object: &Object<'_>,
    whole: &str,
    pod_status: Option<&str>,
    launcher_output: Option<&str>,
) -> Result<(), Unsupported> {
    let Some(result) = object.get("result").filter(|r| r.starts_with('{')) else {
        let json = format!(
            "{{\"pod_status\":{},\"launcher_output\":{}}}",
            pod_status.unwrap_or("null"),
            launcher_output.unwrap_or("null")
        );
        splice.set_member(object, whole, "result", json);
        return Ok(());
    };
    let fields: Object<'_> = serde_json::from_str(result).map_err(|_| "result is not an object")?;
    let mut added = Vec::new();
    for (name, json) in [
        ("pod_status", pod_status),
        ("launcher_output", launcher_output),
    ] {
        let Some(json) = json else { continue };
        match fields.get(name) {
            Some(value) => splice.replace(value, json.to_owned()),
            None => added.push(format!("\"{name}\":{json}")),
        }
    }
    if !added.is_empty() {
        splice.insert_members(&fields, result, added.join(","));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use task_state_core::json_string;

    const STAMP: &str = "\"2025-11-17T10:00:16.515926+09:00\"";

    fn entries(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| json_string(l)).collect()
    }

    #[test]
    fn an_append_keeps_every_other_byte() {
        let text = r#" {"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a" ],"updated_at":"x","created_at":"c","status":"pending" } "#;
        let lines = entries(&["m", "n"]);
        let out = edited(text, &Edit::Append { entries: &lines }, STAMP).unwrap();
        assert_eq!(
            out,
            format!(
                r#" {{"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a","m","n" ],"updated_at":{STAMP},"created_at":"c","status":"pending" }} "#
            )
        );
    }

    #[test]
    fn missing_members_go_after_the_last_one_in_the_scripts_order() {
        let text = r#"{"status":"running" , "x":[1] }"#;
        let lines = entries(&["m"]);
        let edit = Edit::Status {
            to: "\"failed\"",
            allowed: "",
            entries: &lines,
        };
        let out = edited(text, &edit, STAMP).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"status":"failed" , "x":[1],"updated_at":{STAMP},"created_at":{STAMP},"logs":["m"] }}"#
            )
        );
        let out = edited("{ }", &Edit::Append { entries: &lines }, STAMP).unwrap();
        assert_eq!(
            out,
            format!(r#"{{"updated_at":{STAMP},"created_at":{STAMP},"logs":["m"] }}"#)
        );
    }

    #[test]
    fn the_last_occurrence_of_a_member_is_the_one_edited() {
        let text = r#"{"status":"a","created_at":null,"status":"b"}"#;
        let edit = Edit::Status {
            to: "\"running\"",
            allowed: "",
            entries: &[],
        };
        let out = edited(text, &edit, STAMP).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"status":"a","created_at":{STAMP},"status":"running","updated_at":{STAMP}}}"#
            )
        );
    }

    #[test]
    fn a_result_that_is_no_object_becomes_one_and_missing_fields_are_added() {
        let edit = Edit::Result {
            pod_status: Some("\"p\""),
            launcher_output: None,
        };
        let out = edited(r#"{"result":null,"created_at":"c"}"#, &edit, STAMP).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"result":{{"pod_status":"p","launcher_output":null}},"created_at":"c","updated_at":{STAMP}}}"#
            )
        );
        let both = Edit::Result {
            pod_status: Some("\"p\""),
            launcher_output: Some("\"l\""),
        };
        let out = edited(r#"{"result":{ },"created_at":"c"}"#, &both, STAMP).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"result":{{"pod_status":"p","launcher_output":"l" }},"created_at":"c","updated_at":{STAMP}}}"#
            )
        );
        let out = edited(
            r#"{"result":{"x":1,"launcher_output":"o"},"created_at":"c"}"#,
            &both,
            STAMP,
        )
        .unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"result":{{"x":1,"launcher_output":"l","pod_status":"p"}},"created_at":"c","updated_at":{STAMP}}}"#
            )
        );
    }

    #[test]
    fn jobs_go_where_the_record_keeps_them() {
        let jobs = |text: &str, field: &str| {
            let edit = Edit::Jobs {
                ids: r#"["j"]"#,
                field,
            };
            edited(text, &edit, STAMP).unwrap()
        };
        let out = jobs(r#"{"active_jobs":["a"],"created_at":"c"}"#, "jobs");
        assert!(
            out.starts_with(r#"{"active_jobs":["j"],"created_at":"c","#),
            "{out}"
        );
        let out = jobs(r#"{"jobs":null,"active_jobs":[],"created_at":"c"}"#, "jobs");
        assert!(
            out.starts_with(r#"{"jobs":["j"],"active_jobs":["j"],"#),
            "{out}"
        );
        let out = jobs(r#"{"created_at":"c"}"#, "active_jobs");
        assert!(
            out.contains(r#","active_jobs":["j"],"updated_at""#),
            "{out}"
        );
    }

    #[test]
    fn the_scripts_arguments_make_the_edit() {
        let args: Vec<String> = ["\"done\"", "running pending", "\"e\""]
            .map(String::from)
            .to_vec();
        let edit = Edit::of("set_status", &args).unwrap();
        assert!(edit.allows("running") && edit.allows("pending") && !edit.allows("run"));
        let kept = vec![String::new(), "\"o\"".to_owned()];
        assert_eq!(
            Edit::of("update_result", &kept),
            Some(Edit::Result {
                pod_status: None,
                launcher_output: Some("\"o\"")
            })
        );
        let bad_field = vec!["[]".to_owned(), "other".to_owned()];
        assert_eq!(Edit::of("set_jobs", &bad_field), None);
        assert_eq!(Edit::of("save", &args), None);
    }

    #[test]
    fn what_is_not_an_object_is_left_to_the_script() {
        let edit = Edit::Append { entries: &[] };
        assert_eq!(edited("[1]", &edit, STAMP), Err("not a JSON object"));
        assert_eq!(edited(r#"{"a":1"#, &edit, STAMP), Err("not a JSON object"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use task_state_core::serde_json::{json, Map, Value};

        /// Some white space, as another writer may put between tokens.
        fn space() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["", " ", "\n", "\t ", "  "])
        }

        /// A JSON value of another writer, with its exact text.
        fn foreign() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "0.30000000000000004",
                "1E+2",
                "-0",
                "123456789012345678901234567890",
                "\"\\u00e9\\n\"",
                "[1, {\"a\" : null}]",
                "{}",
                "true",
            ])
        }

        #[derive(Debug, Clone)]
        enum Op {
            Append(Vec<String>),
            Status(Option<String>),
            Result(Option<String>, Option<String>),
            Jobs(Vec<String>),
        }

        fn op() -> impl Strategy<Value = Op> {
            let text = "[ -~é\"\\\\]{0,12}";
            prop_oneof![
                prop::collection::vec(text, 1..3).prop_map(Op::Append),
                prop::option::of(text).prop_map(Op::Status),
                (prop::option::of(text), prop::option::of(text))
                    .prop_map(|(p, l)| Op::Result(p, l)),
                prop::collection::vec(text, 0..3).prop_map(Op::Jobs),
            ]
        }

        /// `f` of the edit that makes `op`, as the repository's arguments give it.
        fn with_edit<R>(op: &Op, f: impl FnOnce(&Edit<'_>) -> R) -> R {
            let encode = |v: &Option<String>| v.as_deref().map(json_string);
            let entries =
                |lines: &[String]| lines.iter().map(|l| json_string(l)).collect::<Vec<_>>();
            match op {
                Op::Append(lines) => f(&Edit::Append {
                    entries: &entries(lines),
                }),
                Op::Status(entry) => f(&Edit::Status {
                    to: "\"failed\"",
                    allowed: "",
                    entries: &entries(entry.as_slice()),
                }),
                Op::Result(p, l) => {
                    let (p, l) = (encode(p), encode(l));
                    f(&Edit::Result {
                        pod_status: p.as_deref(),
                        launcher_output: l.as_deref(),
                    })
                }
                Op::Jobs(ids) => f(&Edit::Jobs {
                    ids: &serde_json::to_string(ids).unwrap(),
                    field: "jobs",
                }),
            }
        }

        /// `op` on the record as a JSON value, as the scripts apply it.
        fn expected(mut record: Map<String, Value>, op: &Op, stamp: &str) -> Value {
            let stamp: Value = serde_json::from_str(stamp).unwrap();
            record.insert("updated_at".into(), stamp.clone());
            if record.get("created_at").is_none_or(Value::is_null) {
                record.insert("created_at".into(), stamp);
            }
            let append = |record: &mut Map<String, Value>, lines: &[String]| {
                if lines.is_empty() {
                    return;
                }
                let logs = record.entry("logs").or_insert(json!([]));
                if !logs.is_array() {
                    *logs = json!([]);
                }
                logs.as_array_mut()
                    .unwrap()
                    .extend(lines.iter().map(|l| json!(l)));
            };
            match op {
                Op::Append(lines) => append(&mut record, lines),
                Op::Status(entry) => {
                    record.insert("status".into(), json!("failed"));
                    append(&mut record, entry.as_slice());
                }
                Op::Result(pod_status, launcher_output) => {
                    let result = record.entry("result").or_insert(Value::Null);
                    if !result.is_object() {
                        *result = json!({"pod_status": null, "launcher_output": null});
                    }
                    let result = result.as_object_mut().unwrap();
                    for (name, v) in [
                        ("pod_status", pod_status),
                        ("launcher_output", launcher_output),
                    ] {
                        if let Some(v) = v {
                            result.insert(name.into(), json!(v));
                        }
                    }
                }
                Op::Jobs(ids) => {
                    record.insert("jobs".into(), json!(ids));
                }
            }
            Value::Object(record)
        }

        proptest! {
            /// Edits made one after the other from the layout the one before gave (as a link
            /// edits a text it kept) write what edits that read each text through write, and
            /// each layout is where the members of its text stand; whichever members the
            /// record has (none, some, repeated) and whatever white space.
            #[test]
            fn edits_from_a_kept_layout_write_what_edits_from_the_text_write(
                members in prop::collection::vec(
                    (prop::sample::select(vec!["status", "logs", "result", "jobs", "created_at", "updated_at", "x"]),
                     prop::sample::select(vec!["null", "[]", "[\"a\"]", "{}", "{\"pod_status\":1}", "\"s\"", "7"])),
                    0..6,
                ),
                ops in prop::collection::vec(op(), 1..5),
                gap in space(),
            ) {
                let members: Vec<String> = members
                    .iter()
                    .map(|(name, value)| format!("\"{name}\"{gap}:{gap}{value}"))
                    .collect();
                let mut text = format!("{gap}{{{gap}{}{gap}}}{gap}", members.join(&format!("{gap},{gap}")));
                let mut kept: Option<Layout> = None;
                for op in &ops {
                    let fresh = with_edit(op, |edit| edited_at(&text, None, edit, STAMP));
                    let from_kept = with_edit(op, |edit| edited_at(&text, kept.as_ref(), edit, STAMP));
                    prop_assert_eq!(&from_kept, &fresh, "{}", text);
                    let Ok((out, layout)) = fresh else { break };
                    let parsed: Object<'_> = serde_json::from_str(&out).unwrap();
                    prop_assert_eq!(&parsed.layout(&out), &layout, "{}", out);
                    text = out;
                    kept = Some(layout);
                }
            }

            /// Any order of members, any white space, members of another writer: the edit
            /// gives the record the scripts' edit gives, and every member it does not edit
            /// keeps its exact text.
            #[test]
            fn an_edit_keeps_every_byte_it_does_not_change(
                foreign_members in prop::collection::vec((foreign(), space(), space()), 0..3),
                logs in prop::collection::vec("[a-z ]{0,8}", 0..3),
                result_is_object in any::<bool>(),
                op in op(),
                order in any::<u64>(),
                gap in space(),
            ) {
                let mut members: Vec<String> = vec![
                    format!("\"status\"{gap}:{gap}\"running\""),
                    "\"updated_at\":\"t\"".to_owned(),
                    format!("\"logs\":{}", serde_json::to_string(&logs).unwrap()),
                    "\"jobs\":[]".to_owned(),
                    if result_is_object {
                        format!("\"result\":{{\"pod_status\":null,{gap}\"x\":1}}")
                    } else {
                        "\"result\":null".to_owned()
                    },
                ];
                for (n, (value, before, after)) in foreign_members.iter().enumerate() {
                    members.push(format!("\"x{n}\"{before}:{after}{value}"));
                }
                let mut seed = order;
                for i in (1..members.len()).rev() {
                    members.swap(i, (seed % (i as u64 + 1)) as usize);
                    seed /= i as u64 + 1;
                }
                let text = format!("{{{gap}{}{gap}}}", members.join(&format!("{gap},{gap}")));
                let original: Map<String, Value> = serde_json::from_str(&text).unwrap();
                let out = with_edit(&op, |edit| edited(&text, edit, STAMP)).unwrap();
                let found: Value = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(found, expected(original, &op, STAMP));
                for (n, (value, before, after)) in foreign_members.iter().enumerate() {
                    let member = format!("\"x{n}\"{before}:{after}{value}");
                    prop_assert!(out.contains(&member), "{} lost in {}", member, out);
                }
            }
        }
    }
}
