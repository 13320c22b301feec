//! An application's own serde types, in a build that has task-state in it: serde_json
//! behaves as it does without task-state. With serde_json's `arbitrary_precision` (which
//! task-state enabled before), numbers reach untagged, internally tagged and flattened types
//! as maps and fail to deserialize; with `preserve_order`, every `serde_json::Map` keeps
//! insertion order instead of sorting its keys.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use task_state::{RawMap, TaskRecord, TaskStatus};

#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
enum Size {
    Frames(u64),
    Ratio(f64),
    Named(String),
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Shape {
    Circle { radius: f64 },
    Square { side: u32 },
}

#[derive(Debug, PartialEq, Deserialize)]
struct Render {
    scene: String,
    #[serde(flatten)]
    quality: Quality,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Quality {
    frames: u32,
    ratio: f64,
}

#[test]
fn an_untagged_enum_with_a_float_deserializes() {
    assert_eq!(
        serde_json::from_str::<Size>("0.5").unwrap(),
        Size::Ratio(0.5)
    );
    assert_eq!(
        serde_json::from_str::<Size>("240").unwrap(),
        Size::Frames(240)
    );
    assert_eq!(
        serde_json::from_str::<Size>(r#""hd""#).unwrap(),
        Size::Named("hd".to_owned())
    );
    assert_eq!(
        serde_json::from_value::<Size>(json!(1.25)).unwrap(),
        Size::Ratio(1.25)
    );
}

#[test]
fn an_internally_tagged_enum_with_numbers_deserializes() {
    assert_eq!(
        serde_json::from_str::<Shape>(r#"{"kind":"circle","radius":2.5}"#).unwrap(),
        Shape::Circle { radius: 2.5 }
    );
    assert_eq!(
        serde_json::from_str::<Shape>(r#"{"side":3,"kind":"square"}"#).unwrap(),
        Shape::Square { side: 3 }
    );
}

#[test]
fn a_flattened_struct_with_numbers_deserializes() {
    let render: Render =
        serde_json::from_str(r#"{"scene":"forest","frames":240,"ratio":0.75}"#).unwrap();
    assert_eq!(
        render,
        Render {
            scene: "forest".to_owned(),
            quality: Quality {
                frames: 240,
                ratio: 0.75
            }
        }
    );
}

#[test]
fn maps_keep_serde_json_s_sorted_order_and_numbers_their_usual_types() {
    let map: Map<String, Value> = serde_json::from_str(r#"{"zeta":1,"alpha":2,"mid":3}"#).unwrap();
    assert_eq!(map.keys().collect::<Vec<_>>(), ["alpha", "mid", "zeta"]);
    assert_eq!(
        json!({"zeta": 1, "alpha": 2}).to_string(),
        r#"{"alpha":2,"zeta":1}"#
    );
    // Without arbitrary_precision a Value's numbers are f64, i64 or u64: 1e400 is out of
    // range, and a float is written back in its shortest form.
    assert!(serde_json::from_str::<Value>("1e400").is_err());
    assert_eq!(
        serde_json::from_str::<Value>("1.50").unwrap().to_string(),
        "1.5"
    );
}

/// The application's types read a record's parameters, and the record keeps every digit.
#[test]
fn parameters_read_into_the_application_s_types_and_keep_their_text() {
    let mut record = TaskRecord::new("1", "render", "alice", TaskStatus::Pending);
    record.parameters = r#"{"size":0.5,"shape":{"kind":"circle","radius":2.5},"render":{"scene":"forest","frames":240,"ratio":0.75},"ratio":0.30000000000000004,"huge":1e400}"#
        .parse()
        .unwrap();
    assert_eq!(
        record.parameters.get_as::<Size>("size").unwrap(),
        Some(Size::Ratio(0.5))
    );
    assert_eq!(
        record.parameters.get_as::<Shape>("shape").unwrap(),
        Some(Shape::Circle { radius: 2.5 })
    );
    let render: Render = record.parameters.get_as("render").unwrap().unwrap();
    assert_eq!(render.quality.frames, 240);
    let whole: RawMap = r#"{"scene":"forest","frames":240,"ratio":0.75}"#.parse().unwrap();
    assert_eq!(whole.deserialize_as::<Render>().unwrap(), render);
    let json = record.to_json();
    assert!(
        json.contains(r#""ratio":0.30000000000000004,"huge":1e400}"#),
        "{json}"
    );
    let back = TaskRecord::from_json(&json).unwrap();
    assert_eq!(back.parameters, record.parameters);
    let from_value = RawMap::try_from(json!({"size": 0.5})).unwrap();
    assert_eq!(
        from_value.get_as::<Size>("size").unwrap(),
        Some(Size::Ratio(0.5))
    );
}
