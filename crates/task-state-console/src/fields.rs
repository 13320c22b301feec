//! How record fields read on a page. The one place that touches `parameters` and `extra`
//! (each a [`task_state_core::RawMap`]): both are printed from their JSON text.

use task_state_core::jiff::Timestamp;
use task_state_core::{LogEntry, RawMap, TaskRecord, TaskTime};

/// `value` (anything that serializes as JSON) pretty-printed from its text, so that every
/// number keeps its digits (`1e400`, 30-digit integers) and any depth prints.
fn pretty(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    indent_json(&text)
}

/// Re-indents JSON text by its tokens, two spaces a level, without parsing its values;
/// empty objects and arrays stay `{}` and `[]`.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.next_if(|n| n.is_ascii_whitespace()).is_some() {}
                let close = if c == '{' { '}' } else { ']' };
                if chars.next_if_eq(&close).is_some() {
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The parameters, pretty-printed.
pub(crate) fn parameters(record: &TaskRecord) -> String {
    pretty(&record.parameters)
}

/// Members unknown to this version, pretty-printed, or `None` when there are none.
fn unknown(members: &RawMap) -> Option<String> {
    let text = pretty(members);
    (text != "{}").then_some(text)
}

/// The record's members this version does not know.
pub(crate) fn extra(record: &TaskRecord) -> Option<String> {
    unknown(&record.extra)
}

/// The members of `result` this version does not know (a foreign tool's `exit_code`).
pub(crate) fn result_extra(record: &TaskRecord) -> Option<String> {
    unknown(&record.result.extra)
}

/// A time as the CLI's tables show it: local time to the second.
pub(crate) fn short_time(at: &TaskTime) -> String {
    at.local().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A length of time in words, to the two largest units: `45 s`, `5 min 3 s`, `2 h 5 min`,
/// `3 d 4 h`.
pub(crate) fn span(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| seconds >= *size) else {
        return "0 s".to_owned();
    };
    let (size, name) = units[first];
    let mut text = format!("{} {name}", seconds / size);
    if let Some((next, next_name)) = units.get(first + 1) {
        let rest = seconds % size / next;
        if rest > 0 {
            text.push_str(&format!(" {rest} {next_name}"));
        }
    }
    text
}

/// How long before `now` the moment `at` was: `5 min ago` (`in 5 s` when it is ahead, a
/// writer's clock being ahead of this one).
pub(crate) fn ago(at: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second() - at.as_second();
    match seconds {
        0 => "now".to_owned(),
        s if s > 0 => format!("{} ago", span(s.unsigned_abs())),
        s => format!("in {}", span(s.unsigned_abs())),
    }
}

/// How long the task has taken: from its creation to its final status, or to `now` while it
/// is not final.
pub(crate) fn duration(record: &TaskRecord, now: Timestamp) -> String {
    let created = record.created_at.timestamp().as_second();
    if record.status.is_terminal() {
        let took = record.updated_at.timestamp().as_second() - created;
        format!("took {}", span(took.max(0).unsigned_abs()))
    } else {
        let running = now.as_second() - created;
        format!("{} so far", span(running.max(0).unsigned_abs()))
    }
}

/// Characters of a log line shown before "show more".
pub(crate) const LONG_LINE: usize = 1_000;

/// A log message longer than [`LONG_LINE`] characters, split where "show more" goes; `None`
/// for a shorter one.
pub(crate) fn split_long(message: &str) -> Option<(&str, &str)> {
    let (at, _) = message.char_indices().nth(LONG_LINE)?;
    Some(message.split_at(at))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_their_two_largest_units() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(303), "5 min 3 s");
        assert_eq!(span(300), "5 min");
        assert_eq!(span(7_500), "2 h 5 min");
        assert_eq!(span(273_600), "3 d 4 h");
        let now: Timestamp = "2026-12-05T08:00:00Z".parse().unwrap();
        let before: Timestamp = "2026-12-05T07:55:00Z".parse().unwrap();
        assert_eq!(ago(before, now), "5 min ago");
        assert_eq!(ago(now, before), "in 5 min");
        assert_eq!(ago(now, now), "now");
    }

    #[test]
    fn long_lines_split_on_a_character_boundary() {
        assert_eq!(split_long(&"é".repeat(LONG_LINE)), None);
        let long = "é".repeat(LONG_LINE + 3);
        let (head, rest) = split_long(&long).unwrap();
        assert_eq!((head.chars().count(), rest.chars().count()), (LONG_LINE, 3));
    }

    #[test]
    fn json_is_indented_by_its_tokens_and_keeps_every_digit() {
        let text = r#"{"big":123456789012345678901234567890,"huge":1e400,"s":"a,{\"b\":[1]}","e":{},"l":[ ],"n":[1,{"x":null}]}"#;
        let pretty = indent_json(text);
        assert_eq!(
            pretty,
            "{\n  \"big\": 123456789012345678901234567890,\n  \"huge\": 1e400,\n  \
             \"s\": \"a,{\\\"b\\\":[1]}\",\n  \"e\": {},\n  \"l\": [],\n  \"n\": [\n    1,\n    \
             {\n      \"x\": null\n    }\n  ]\n}"
        );
        // Only white space between tokens was added (this text has none inside strings).
        let squeezed = pretty
            .replace('\n', "")
            .replace("  ", "")
            .replace(": ", ":");
        assert_eq!(squeezed, text.replace("[ ]", "[]"));
    }
}
