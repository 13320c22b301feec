//! Tests of the prototypes' text edits: every byte outside the edited values kept.

use super::*;
use task_state_core::{format_log_entry_at, json_string};

fn now() -> TaskTime {
    crate::fixtures::fixed_time()
}

#[test]
fn an_append_keeps_every_other_byte() {
    let text = r#"{"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a" ],"updated_at":"x","status":"pending"}"#;
    let out = edited(text, &Edit::Append(vec!["m".into()]), now()).unwrap();
    let stamp = json_string(&now().to_string());
    let entry = json_string(&format_log_entry_at("m", now()));
    assert_eq!(
        out,
        format!(
            r#"{{"task_id":"1", "ratio":0.30000000000000004,"logs":[ "a" ,{entry}],"updated_at":{stamp},"status":"pending"}}"#
        )
    );
}

#[test]
fn a_null_result_becomes_an_object_and_a_missing_member_is_added() {
    let text = r#"{"result":null,"logs":[]}"#;
    let edit = Edit::Result {
        pod_status: Some("p".into()),
        launcher_output: None,
    };
    let out = edited(text, &edit, now()).unwrap();
    let stamp = json_string(&now().to_string());
    assert_eq!(
        out,
        format!(
            r#"{{"result":{{"pod_status":"p","launcher_output":null}},"logs":[],"updated_at":{stamp}}}"#
        )
    );
    let text = r#"{"result":{"x":1},"updated_at":"t"}"#;
    let out = edited(text, &edit, now()).unwrap();
    assert_eq!(
        out,
        format!(r#"{{"result":{{"x":1,"pod_status":"p"}},"updated_at":{stamp}}}"#)
    );
}

#[test]
fn a_repeated_member_is_left_to_the_script() {
    let text = r#"{"status":"a","status":"b"}"#;
    let edit = Edit::Jobs(vec![]);
    assert_eq!(edited(text, &edit, now()), Err("a member is given twice"));
}

#[test]
fn jobs_go_where_the_record_keeps_them() {
    let text = r#"{"active_jobs":["a"],"updated_at":"t"}"#;
    let out = edited(text, &Edit::Jobs(vec!["j".into()]), now()).unwrap();
    assert!(
        out.starts_with(r#"{"active_jobs":["j"],"updated_at":"#),
        "{out}"
    );
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

    fn edit() -> impl Strategy<Value = Edit> {
        let text = "[ -~é\"\\\\]{0,12}";
        prop_oneof![
            prop::collection::vec(text, 1..3).prop_map(Edit::Append),
            (prop::option::of(text)).prop_map(|entry| Edit::Status {
                to: TaskStatus::Failed,
                from: Vec::new(),
                entry,
            }),
            (prop::option::of(text), prop::option::of(text)).prop_map(|(p, l)| {
                Edit::Result {
                    pod_status: p,
                    launcher_output: l,
                }
            }),
            prop::collection::vec(text, 0..3).prop_map(Edit::Jobs),
        ]
    }

    /// `edit` on the record as a JSON value, as the scripts apply it.
    fn expected(mut record: Map<String, Value>, edit: &Edit, now: TaskTime) -> Value {
        record.insert("updated_at".into(), json!(now.to_string()));
        let line = |m: &String| json!(format_log_entry_at(m, now));
        match edit {
            Edit::Append(lines) => {
                let logs = record.entry("logs").or_insert(json!([]));
                if !logs.is_array() {
                    *logs = json!([]);
                }
                let logs = logs.as_array_mut().unwrap();
                logs.extend(lines.iter().map(line));
            }
            Edit::Status { to, entry, .. } => {
                record.insert("status".into(), json!(to.as_str()));
                if let Some(m) = entry.as_ref().filter(|m| !m.is_empty()) {
                    let logs = record.entry("logs").or_insert(json!([]));
                    logs.as_array_mut().unwrap().push(line(m));
                }
            }
            Edit::Result {
                pod_status,
                launcher_output,
            } => {
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
            Edit::Jobs(ids) => {
                record.insert("jobs".into(), json!(ids));
            }
            Edit::Save(_) => unreachable!(),
        }
        Value::Object(record)
    }

    proptest! {
        /// Any order of members, any white space, members of another writer: the edit
        /// gives the record the scripts' edit gives, and every member it does not edit
        /// keeps its exact text.
        #[test]
        fn an_edit_keeps_every_byte_it_does_not_change(
            foreign_members in prop::collection::vec((foreign(), space(), space()), 0..3),
            logs in prop::collection::vec("[a-z ]{0,8}", 0..3),
            result_is_object in any::<bool>(),
            edit in edit(),
            order in any::<u64>(),
            gap in space(),
        ) {
            let mut members: Vec<String> = vec![
                format!("\"status\"{gap}:{gap}\"running\""),
                format!("\"updated_at\":\"t\""),
                format!("\"logs\":{}", serde_json::to_string(&logs).unwrap()),
                format!("\"jobs\":[]"),
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
            let out = edited(&text, &edit, now()).unwrap();
            let found: Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(found, expected(original, &edit, now()));
            for (n, (value, before, after)) in foreign_members.iter().enumerate() {
                let member = format!("\"x{n}\"{before}:{after}{value}");
                prop_assert!(out.contains(&member), "{} lost in {}", member, out);
            }
        }
    }
}
