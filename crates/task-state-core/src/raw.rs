//! [`RawMap`]: a JSON object whose values keep the exact text they were read with.

use std::borrow::Cow;
use std::fmt;
use std::ops::Index;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object whose member values keep their exact text: the type of
/// [`TaskRecord::parameters`](crate::TaskRecord::parameters), of the members of a record that
/// this version does not know ([`TaskRecord::extra`](crate::TaskRecord::extra)) and of the
/// other members of a result ([`TaskResult::extra`](crate::TaskResult::extra)).
///
/// Each value is a [`RawValue`]: the bytes it was read with, so `0.30000000000000004`,
/// `12345678901234567890`, `1e400`, `-0`, `1E+2`, `"\u00e9"` and nested values stay exactly
/// as another writer wrote them, and the members stay in their order. What is not kept is the
/// white space between members (they are written compact) and a repeated key: the last value
/// wins, at the place of the first, as Python's `json` reads it.
///
/// Values are read on demand, as any [`Deserialize`] type or as a [`serde_json::Value`]
/// ([`RawMap::get_as`], [`RawMap::deserialize_as`]), and a map is built from pairs, a
/// `serde_json::Map`, JSON text or any serializable struct. The crate does not change
/// serde_json's features: `Value` numbers are `f64`, `i64` or `u64` as usual, so a value
/// such as `1e400` reads as text ([`RawValue::get`]) but not as a `Value`.
///
/// ```
/// use task_state_core::serde_json::{json, Value};
/// use task_state_core::RawMap;
///
/// let mut parameters: RawMap = r#"{"ratio":0.30000000000000004,"big":123456789012345678901234567890}"#.parse()?;
/// parameters.insert("frames", 240);
/// parameters.insert("scene", json!({"name": "forest", "lights": [1, 2]}));
///
/// assert_eq!(parameters.get_as::<u32>("frames")?, Some(240));
/// assert_eq!(parameters["big"].get(), "123456789012345678901234567890");
/// assert_eq!(parameters.get_as::<Value>("scene")?.unwrap()["lights"][1], 2);
/// assert_eq!(
///     parameters.to_string(),
///     r#"{"ratio":0.30000000000000004,"big":123456789012345678901234567890,"frames":240,"scene":{"lights":[1,2],"name":"forest"}}"#
/// );
/// # Ok::<(), task_state_core::serde_json::Error>(())
/// ```
///
/// Two maps are equal when they hold the same keys with the same texts, in any order.
#[derive(Clone, Default)]
pub struct RawMap {
    members: IndexMap<String, Box<RawValue>>,
}

impl PartialEq for RawMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key).is_some_and(|o| o.get() == value.get()))
    }
}

impl Eq for RawMap {}

impl RawMap {
    /// An empty map.
    pub fn new() -> Self {
        RawMap::default()
    }

    /// Builds a map from anything that serializes to a JSON object: a struct, a `HashMap`,
    /// a `serde_json::Map`, ...
    ///
    /// # Errors
    /// When `value` does not serialize (a map with keys that are not strings) or serializes
    /// to something other than an object.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Render { frames: u32, scene: &'static str }
    ///
    /// let parameters = task_state_core::RawMap::from_serialize(&Render { frames: 240, scene: "forest" })?;
    /// assert_eq!(parameters.to_string(), r#"{"frames":240,"scene":"forest"}"#);
    /// # Ok::<(), task_state_core::serde_json::Error>(())
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::from_str(serde_json::value::to_raw_value(value)?.get())
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there is no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when there is a member `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    /// The text of member `key`'s value, exactly as read; [`RawValue::get`] gives it as a
    /// `&str`.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.members.get(key).map(|value| &**value)
    }

    /// Member `key`'s value read as `T`: a number, a string, a `serde_json::Value`, your own
    /// struct. `Ok(None)` when there is no such member.
    ///
    /// # Errors
    /// When the value does not read as `T`.
    ///
    /// ```
    /// let parameters: task_state_core::RawMap = r#"{"frames":240,"scene":"forest"}"#.parse()?;
    /// assert_eq!(parameters.get_as::<u32>("frames")?, Some(240));
    /// assert_eq!(parameters.get_as::<&str>("scene")?, Some("forest"));
    /// assert_eq!(parameters.get_as::<u32>("missing")?, None);
    /// assert!(parameters.get_as::<u32>("scene").is_err());
    /// # Ok::<(), task_state_core::serde_json::Error>(())
    /// ```
    pub fn get_as<'a, T: Deserialize<'a>>(&'a self, key: &str) -> serde_json::Result<Option<T>> {
        self.get(key)
            .map(|value| serde_json::from_str(value.get()))
            .transpose()
    }

    /// The whole map read as `T`, usually a struct of your parameters.
    ///
    /// # Errors
    /// When the map does not read as `T`.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Render { frames: u32, scene: String }
    ///
    /// let parameters: task_state_core::RawMap = r#"{"frames":240,"scene":"forest"}"#.parse()?;
    /// let render: Render = parameters.deserialize_as()?;
    /// assert_eq!((render.frames, render.scene.as_str()), (240, "forest"));
    /// # Ok::<(), task_state_core::serde_json::Error>(())
    /// ```
    pub fn deserialize_as<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        let members = self
            .members
            .iter()
            .map(|(key, value)| (key.as_str(), &**value));
        T::deserialize(de::value::MapDeserializer::<_, serde_json::Error>::new(
            members,
        ))
    }

    /// The map as a `serde_json::Map` (sorted by key, as serde_json's `Map` is by default).
    /// Numbers become `f64`, `i64` or `u64`, so this loses digits that do not fit.
    ///
    /// # Errors
    /// When a value does not read as a `Value`: a number out of `f64`'s range such as `1e400`,
    /// a string with a lone surrogate escape, or nesting deeper than serde_json's limit.
    pub fn to_map(&self) -> serde_json::Result<Map<String, Value>> {
        self.members
            .iter()
            .map(|(key, value)| Ok((key.clone(), serde_json::from_str(value.get())?)))
            .collect()
    }

    /// Sets member `key` to `value`, keeping the member's place when it exists. Returns the
    /// value it replaced.
    ///
    /// ```
    /// use task_state_core::serde_json::json;
    /// let mut parameters = task_state_core::RawMap::new();
    /// parameters.insert("frames", 240);
    /// parameters.insert("scene", "forest");
    /// parameters.insert("lights", json!([1, 2]));
    /// assert_eq!(parameters.to_string(), r#"{"frames":240,"scene":"forest","lights":[1,2]}"#);
    /// ```
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Option<Box<RawValue>> {
        self.insert_raw(key, raw_of(&value.into()))
    }

    /// Sets member `key` to exactly the text `value`, keeping the member's place when it
    /// exists. Returns the value it replaced.
    ///
    /// ```
    /// use task_state_core::serde_json::value::RawValue;
    /// let mut parameters = task_state_core::RawMap::new();
    /// parameters.insert_raw("huge", RawValue::from_string("1e400".to_owned())?);
    /// assert_eq!(parameters.to_string(), r#"{"huge":1e400}"#);
    /// # Ok::<(), task_state_core::serde_json::Error>(())
    /// ```
    pub fn insert_raw(
        &mut self,
        key: impl Into<String>,
        value: Box<RawValue>,
    ) -> Option<Box<RawValue>> {
        self.members.insert(key.into(), value)
    }

    /// Removes member `key`, keeping the order of the others. Returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        self.members.shift_remove(key)
    }

    /// The members in order: each key with its value's text.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.members.iter())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.members.keys().map(String::as_str)
    }
}

/// The text of a `Value`. Serializing a `Value` cannot fail: its keys are strings and its
/// numbers finite.
fn raw_of(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a serde_json::Value always serializes")
}

/// The members of a [`RawMap`] in order, from [`RawMap::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a>(indexmap::map::Iter<'a, String, Box<RawValue>>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a RawValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (key.as_str(), &**value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0
            .next_back()
            .map(|(key, value)| (key.as_str(), &**value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a RawMap {
    type Item = (&'a str, &'a RawValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The members of a [`RawMap`] in order, by value.
#[derive(Debug)]
pub struct IntoIter(indexmap::map::IntoIter<String, Box<RawValue>>);

impl Iterator for IntoIter {
    type Item = (String, Box<RawValue>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for RawMap {
    type Item = (String, Box<RawValue>);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.members.into_iter())
    }
}

/// Panics when there is no member `key`, as indexing a `serde_json::Map` does not (it gives
/// `null`): use [`RawMap::get`] where the member may be missing.
///
/// ```
/// let parameters: task_state_core::RawMap = r#"{"ratio":1.50}"#.parse()?;
/// assert_eq!(parameters["ratio"].get(), "1.50");
/// # Ok::<(), task_state_core::serde_json::Error>(())
/// ```
impl Index<&str> for RawMap {
    type Output = RawValue;

    fn index(&self, key: &str) -> &RawValue {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no member {key:?} in the map"),
        }
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for RawMap {
    /// ```
    /// use task_state_core::serde_json::json;
    /// let parameters: task_state_core::RawMap = [("frames", json!(240)), ("scene", json!("forest"))].into_iter().collect();
    /// assert_eq!(parameters.to_string(), r#"{"frames":240,"scene":"forest"}"#);
    /// ```
    fn from_iter<I: IntoIterator<Item = (K, V)>>(members: I) -> Self {
        let mut map = RawMap::new();
        map.extend(members);
        map
    }
}

impl<K: Into<String>, V: Into<Value>> Extend<(K, V)> for RawMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, members: I) {
        for (key, value) in members {
            self.insert(key, value);
        }
    }
}

/// The pairs, in order, as `HashMap::from([...])` takes them.
///
/// ```
/// use task_state_core::serde_json::json;
/// use task_state_core::{TaskRecord, TaskStatus};
/// let record = TaskRecord::new("42", "render", "alice", TaskStatus::Pending)
///     .with_parameters([("frames", json!(240)), ("scene", json!("forest"))]);
/// assert_eq!(record.parameters.to_string(), r#"{"frames":240,"scene":"forest"}"#);
/// ```
impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for RawMap {
    fn from(members: [(K, V); N]) -> Self {
        members.into_iter().collect()
    }
}

/// The members of a `serde_json::Map`, in its order.
impl From<Map<String, Value>> for RawMap {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

/// The members of a JSON object value.
///
/// ```
/// use task_state_core::serde_json::json;
/// use task_state_core::RawMap;
/// let parameters = RawMap::try_from(json!({"frames": 240}))?;
/// assert_eq!(parameters.get_as::<u32>("frames")?, Some(240));
/// assert!(RawMap::try_from(json!([1, 2])).is_err());
/// # Ok::<(), task_state_core::serde_json::Error>(())
/// ```
impl TryFrom<Value> for RawMap {
    type Error = serde_json::Error;

    fn try_from(value: Value) -> serde_json::Result<Self> {
        match value {
            Value::Object(map) => Ok(map.into()),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a JSON object",
            )),
        }
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// Reads a JSON object, keeping each value's text.
impl FromStr for RawMap {
    type Err = serde_json::Error;

    fn from_str(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }
}

/// The compact JSON text of the object: the members in order, each value as it was read.
impl fmt::Display for RawMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&crate::json_string(key))?;
            f.write_str(":")?;
            f.write_str(value.get())?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for RawMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawMap({self})")
    }
}

impl Serialize for RawMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Reads a JSON object with serde_json (from text or from a `serde_json::Value`): each value
/// is kept as its text, at any depth; keys are read as strings, so a key with a lone surrogate
/// escape (`"\ud800"`) is refused, while inside values such escapes are kept.
impl<'de> Deserialize<'de> for RawMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawMapVisitor)
    }
}

struct RawMapVisitor;

impl<'de> Visitor<'de> for RawMapVisitor {
    type Value = RawMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<RawMap, A::Error> {
        let mut map = RawMap::new();
        while let Some(key) = access.next_key::<Cow<'de, str>>()? {
            let value: Box<RawValue> = access.next_value()?;
            map.insert_raw(key.into_owned(), value);
        }
        Ok(map)
    }
}

impl RawMap {
    /// Keeps a member read by a visitor of a larger object (a record, a result).
    pub(crate) fn keep<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        access: &mut A,
    ) -> Result<(), A::Error> {
        let value: Box<RawValue> = access.next_value()?;
        self.insert_raw(key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_text_and_members_their_order() {
        let text = r#"{"z":1E+2,"a":-0,"m":1e400,"b":123456789012345678901234567890,"e":"\u00e9\/","n":[ 1 , {"x" : null} ],"d":{}}"#;
        let map: RawMap = text.parse().unwrap();
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            ["z", "a", "m", "b", "e", "n", "d"]
        );
        assert_eq!(map["z"].get(), "1E+2");
        assert_eq!(map["e"].get(), r#""\u00e9\/""#);
        assert_eq!(map["n"].get(), r#"[ 1 , {"x" : null} ]"#);
        assert_eq!(map.to_string(), text);
        assert_eq!(serde_json::to_string(&map).unwrap(), map.to_string());
    }

    #[test]
    fn white_space_between_members_goes_and_a_repeated_key_keeps_its_first_place() {
        let map: RawMap = " { \"a\" : 1 ,\n\"b\":2, \"a\":3 } ".parse().unwrap();
        assert_eq!(map.to_string(), r#"{"a":3,"b":2}"#);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn values_may_nest_at_any_depth_and_hold_lone_surrogates_but_keys_may_not() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let map: RawMap = format!(r#"{{"deep":{deep},"lone":"\ud800","in":{{"\udc00":1}}}}"#)
            .parse()
            .unwrap();
        assert_eq!(map["deep"].get(), deep);
        assert_eq!(map["lone"].get(), r#""\ud800""#);
        assert!(map.get_as::<String>("lone").is_err());
        assert!(
            map.get_as::<Value>("deep").is_err(),
            "past serde_json's depth limit"
        );
        assert!(r#"{"\ud800":1}"#.parse::<RawMap>().is_err());
    }

    #[test]
    fn what_is_not_an_object_of_json_is_refused() {
        for bad in [
            "[]",
            "1",
            "null",
            r#"{"a":01}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":NaN}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
        ] {
            assert!(bad.parse::<RawMap>().is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_from_values_maps_structs_and_pairs() {
        let from_map = RawMap::from(
            serde_json::from_str::<Map<String, Value>>(r#"{"b":[1,2.5],"a":"x"}"#).unwrap(),
        );
        assert_eq!(from_map.to_string(), r#"{"a":"x","b":[1,2.5]}"#);
        let from_pairs: RawMap = [("a", "x")].into_iter().collect();
        assert_eq!(
            from_pairs.get_as::<String>("a").unwrap().as_deref(),
            Some("x")
        );
        assert!(RawMap::from_serialize(&[1, 2]).is_err());
        let mut sorted = from_map.to_map().unwrap();
        assert_eq!(sorted.keys().collect::<Vec<_>>(), ["a", "b"]);
        sorted.insert("c".into(), Value::Null);
        assert_eq!(RawMap::from(sorted).len(), 3);
        assert!(RawMap::try_from(Value::Null).is_err());
    }

    #[test]
    fn reads_from_a_value_too() {
        let value = serde_json::json!({"b": [1, 2.5], "a": {"x": null}});
        let map: RawMap = serde_json::from_value(value).unwrap();
        assert_eq!(map.to_string(), r#"{"a":{"x":null},"b":[1,2.5]}"#);
        assert!(serde_json::from_value::<RawMap>(serde_json::json!([1])).is_err());
    }

    #[test]
    fn equality_ignores_the_order_but_not_the_text() {
        let a: RawMap = r#"{"x":1,"y":2}"#.parse().unwrap();
        let b: RawMap = r#"{"y":2,"x":1}"#.parse().unwrap();
        let c: RawMap = r#"{"x":1.0,"y":2}"#.parse().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(format!("{a:?}"), r#"RawMap({"x":1,"y":2})"#);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let mut map: RawMap = r#"{"a":1,"b":2,"c":3}"#.parse().unwrap();
        assert_eq!(
            map.remove("a").map(|v| v.get().to_owned()).as_deref(),
            Some("1")
        );
        assert!(map.remove("a").is_none());
        assert_eq!(map.to_string(), r#"{"b":2,"c":3}"#);
        let pairs: Vec<(String, String)> = map
            .into_iter()
            .map(|(k, v)| (k, v.get().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("b".to_owned(), "2".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ]
        );
    }
}
