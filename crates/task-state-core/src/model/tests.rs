//! Tests of the record's encoding: byte-for-byte round trips, the Python package's forms.

use super::*;
use crate::error::Error;

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
    let record = TaskRecord::from_json(&with(r#"{"launcher_output":"x","extra":[1]}"#)).unwrap();
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

/// A JSON value of the kinds a stored record's log entries could be: strings with escapes,
/// lone or paired surrogates and raw UTF-8, other scalars, arrays, objects.
fn any_log_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("7".to_owned()),
        Just("true".to_owned()),
        Just(r#""""#.to_owned()),
        Just(r#""2025-11-17T10:00:16+09:00,started""#.to_owned()),
        Just(r#""\ud83d\ude00 \u00e9\n""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        Just(r#""\udc00\ud800""#.to_owned()),
        Just(r#""\x""#.to_owned()),
        Just("\"\u{1F600}\"".to_owned()),
        "[a-z ,:]{0,8}".prop_map(|s| format!("{s:?}")),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(|v| format!("[{}]", v.join(","))),
            inner.prop_map(|v| format!(r#"{{"k":{v}}}"#)),
        ]
    })
}

proptest::proptest! {
    /// A record's head decodes exactly where the record does, and names what it names:
    /// the writers that check a record with [`RecordHead`] take the same records as before.
    #[test]
    fn a_head_decodes_exactly_where_its_record_does(
        logs in proptest::collection::vec(any_log_value(), 0..4),
        shape in 0..5usize,
        twice in proptest::bool::ANY,
        tail in proptest::sample::select(vec!["", " ", "x", "{}"]),
    ) {
        let logs = match shape {
            0 => format!("[{}]", logs.join(",")),
            1 => "null".to_owned(),
            2 => logs.first().cloned().unwrap_or_else(|| "7".to_owned()),
            3 => format!("[{}", logs.join(",")),
            _ => format!(r#"{{"a":[{}]}}"#, logs.join(",")),
        };
        let mut json = SPEC_EXAMPLE.replace(
            r#""logs":["2025-11-17T10:00:16.515926+09:00,worker started"]"#,
            &format!(r#""logs":{logs}"#),
        );
        if twice {
            json = json.replace(r#""priority":"low""#, r#""priority":"low","logs":["x"]"#);
        }
        json.push_str(tail);
        head_agrees_with_record(&json)?;
    }
}

/// Whether the head of `json` decodes exactly where its record does, names what the record
/// names, and fails as a decode error.
fn head_agrees_with_record(json: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    let record = TaskRecord::from_json(json);
    let head = RecordHead::from_json(json);
    proptest::prop_assert_eq!(record.is_ok(), head.is_ok(), "{}", json);
    match (record, head) {
        (Ok(record), Ok(head)) => proptest::prop_assert_eq!(
            (record.service, record.user_id, record.status),
            (head.service, head.user_id, head.status)
        ),
        (_, Err(err)) => {
            let decode = matches!(err, Error::Decode { .. });
            proptest::prop_assert!(decode, "{}", err);
        }
        _ => {}
    }
    Ok(())
}

proptest::proptest! {
    /// The same of the members a head only checks besides the log entries: `parameters`
    /// (keys as strings, values of any kind), `jobs` or `active_jobs` (strings), and a member
    /// of a name the record does not know (any value); one of them varied at a time.
    #[test]
    fn a_head_checks_its_other_members_as_its_record_reads_them(
        value in any_log_value(),
        values in proptest::collection::vec(any_log_value(), 0..3),
        key in proptest::sample::select(vec!["k", "\\ud800", "\\u00e9", "k\\x", "\\udc00\\ud800"]),
        member in 0..6usize,
    ) {
        let (from, to) = match member {
            0 => (
                r#""parameters":{"retries":3,"ratio":0.30000000000000004}"#,
                format!(r#""parameters":{{"{key}":{value},"retries":3}}"#),
            ),
            1 => (r#""parameters":{"retries":3,"ratio":0.30000000000000004}"#, format!(r#""parameters":{value}"#)),
            2 => (r#""jobs":["slurm-500"]"#, format!(r#""jobs":[{}]"#, values.join(","))),
            3 => (r#""jobs":["slurm-500"]"#, format!(r#""active_jobs":{value}"#)),
            4 => (r#""priority":"low""#, format!(r#""priority":"low","{key}":{value}"#)),
            _ => (r#""priority":"low""#, format!(r#""priority":"low","zz":[{}]"#, values.join(","))),
        };
        let json = SPEC_EXAMPLE.replace(from, &to);
        proptest::prop_assert_ne!(&json, SPEC_EXAMPLE);
        head_agrees_with_record(&json)?;
    }
}

#[test]
fn a_head_is_refused_where_its_record_is() {
    for bad in [
        "",
        "{",
        r#"{"task_id":"1"}"#,
        r#"{"task_id":"1","service":"s","user_id":"u","status":"lost"}"#,
        r#"{"task_id":"1","service":"s","user_id":"u","status":"pending","logs":[1]}"#,
        r#"{"task_id":"1","service":"s","user_id":"u","status":"pending","logs":["\ud800"]}"#,
        r#"{"task_id":"1","service":"s","user_id":"u","status":"pending","logs":{}}"#,
        r#"{"task_id":"1","service":"s","user_id":"u","status":"pending"} x"#,
    ] {
        assert!(
            matches!(TaskRecord::from_json(bad), Err(Error::Decode { .. })),
            "{bad}"
        );
        assert!(
            matches!(RecordHead::from_json(bad), Err(Error::Decode { .. })),
            "{bad}"
        );
    }
    let head = RecordHead::from_json(SPEC_EXAMPLE).unwrap();
    assert_eq!(
        (head.service.as_str(), head.user_id.as_str(), head.status),
        ("render", "bob", TaskStatus::Running)
    );
}
