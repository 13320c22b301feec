//! Where an edit's bytes go: the members of a record's object as slices of its text
//! ([`Object`]), where they stand ([`Layout`], which a link keeps with a text it wrote), and
//! the byte edits of a text ([`Splice`]), applied in the order `lua/lib/edit.lua` applies
//! them, which say where the members of the new text stand.

use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use task_state_core::json_string;
use task_state_core::serde_json::value::RawValue;

/// The members of a JSON object in the order they stand, each value as the exact text it
/// was read with (a slice of the text: where it stands is where its bytes are).
pub(super) struct Object<'a>(Vec<(String, &'a str)>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((name, value.get()));
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(Members)
    }
}

impl<'a> Object<'a> {
    /// The value of member `name`: its last occurrence, the one the model reads.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    pub(super) fn last(&self) -> Option<&'a str> {
        self.0.last().map(|(_, v)| *v)
    }

    /// The members of `text` where `layout` says they stand.
    pub(super) fn at(text: &'a str, layout: &Layout) -> Option<Self> {
        let members = layout
            .0
            .iter()
            .map(|(name, range)| text.get(range.clone()).map(|value| (name.clone(), value)));
        members.collect::<Option<_>>().map(Object)
    }

    /// Where its members stand in `text`, whose slices they are.
    pub(super) fn layout(&self, text: &str) -> Layout {
        Layout(
            self.0
                .iter()
                .map(|(name, value)| (name.clone(), span(text, value)))
                .collect(),
        )
    }
}

/// Where each member of a record's object stands in its text: its name and the bytes of its
/// value, in the order they stand. A link keeps it with a text it wrote, so that the next
/// edit of that text finds the members without reading the text through (a megabyte of
/// log entries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout(Vec<(String, Range<usize>)>);

/// Where `slice`, a slice of `text`, stands in it.
fn span(text: &str, slice: &str) -> Range<usize> {
    let start = slice.as_ptr() as usize - text.as_ptr() as usize;
    start..start + slice.len()
}

/// Where the last element of `array` ends (a byte offset into it), `array` being the exact
/// text of a JSON array (as a member's value gives it: no white space before its `[` or
/// after its `]`); `None` for an empty array. In valid JSON the last element ends at the
/// last byte before the `]` that is not white space, and the array is empty exactly when
/// that byte is its `[`: no second scan of the array is needed to find where an entry goes.
pub(super) fn last_element(array: &str) -> Option<usize> {
    let inner = array.strip_suffix(']')?;
    let end = inner.trim_end_matches([' ', '\t', '\n', '\r']).len();
    (end > 1).then_some(end)
}

/// Byte edits of a text, as `edit(rec, from, to, json)` of `lua/lib/edit.lua` makes them:
/// `(from, to, json)` replaces `text[from..to]`, `from == to` inserting; applied in order of
/// `from`, then of making. A member added to the record's object notes its name and the
/// length of its value (which ends the `json` inserted), for the new text's [`Layout`].
pub(super) struct Splice<'t> {
    text: &'t str,
    edits: Vec<(usize, usize, String, Option<Added>)>,
}

/// A member added to the record's object: its name and the length of its value.
type Added = (String, usize);

impl<'t> Splice<'t> {
    /// No edits yet of `text`.
    pub(super) fn of(text: &'t str) -> Self {
        Splice {
            text,
            edits: Vec::new(),
        }
    }

    /// Where `slice` (a slice of the text) starts.
    pub(super) fn at(&self, slice: &str) -> usize {
        span(self.text, slice).start
    }

    pub(super) fn replace(&mut self, value: &str, json: String) {
        let Range { start, end } = span(self.text, value);
        self.edits.push((start, end, json, None));
    }

    pub(super) fn insert(&mut self, at: usize, json: String) {
        self.edits.push((at, at, json, None));
    }

    /// `insert_members`: `members` (`"name":json`, comma separated) after the last member of
    /// `object`, whose text is `whole`, or just after its `{`.
    pub(super) fn insert_members(&mut self, object: &Object<'_>, whole: &str, members: String) {
        match object.last() {
            Some(last) => {
                let at = span(self.text, last).end;
                self.insert(at, format!(",{members}"));
            }
            None => {
                // An empty object: the first members inserted open it, the next follow them.
                let at = self.at(whole) + 1;
                let after = self.edits.iter().any(|e| e.0 == at && e.1 == at);
                let comma = if after { "," } else { "" };
                self.insert(at, format!("{comma}{members}"));
            }
        }
    }

    /// `set_member` (of the record's object): replaces the value of `name`, or adds the
    /// member after the last one.
    pub(super) fn set_member(
        &mut self,
        object: &Object<'_>,
        whole: &str,
        name: &str,
        json: String,
    ) {
        match object.get(name) {
            Some(value) => self.replace(value, json),
            None => {
                let len = json.len();
                self.insert_members(object, whole, format!("{}:{json}", json_string(name)));
                if let Some(added) = self.edits.last_mut() {
                    added.3 = Some((name.to_owned(), len));
                }
            }
        }
    }

    /// The new text, and where the members of `object` (the record's) and those added stand
    /// in it.
    pub(super) fn apply(mut self, object: &Object<'_>) -> (String, Layout) {
        // Stable: edits at one place keep the order they were made in.
        self.edits.sort_by_key(|e| e.0);
        let extra: usize = self.edits.iter().map(|e| e.2.len()).sum();
        let mut out = String::with_capacity(self.text.len() + extra);
        // The spans of the text copied, each as (from, to, where it went).
        let mut copied = Vec::with_capacity(self.edits.len() + 1);
        let mut added = Vec::new();
        let mut at = 0;
        for (from, to, json, member) in &self.edits {
            copied.push((at, *from, out.len()));
            out.push_str(&self.text[at..*from]);
            out.push_str(json);
            if let Some((name, len)) = member {
                // `[,]"name":value`: the value ends what was inserted.
                added.push((name.clone(), out.len() - len..out.len()));
            }
            at = *to;
        }
        copied.push((at, self.text.len(), out.len()));
        out.push_str(&self.text[at..]);
        // An offset of the old text where it went: the first span copied that holds it (an
        // offset where text was inserted stays before what was inserted there).
        let moved = |x: usize| {
            copied
                .iter()
                .find(|(from, to, _)| *from <= x && x <= *to)
                .map_or(x, |(from, _, went)| went + (x - from))
        };
        let mut members: Vec<(String, Range<usize>)> = object
            .0
            .iter()
            .map(|(name, value)| {
                let Range { start, end } = span(self.text, value);
                (name.clone(), moved(start)..moved(end))
            })
            .collect();
        members.extend(added);
        (out, Layout(members))
    }
}
