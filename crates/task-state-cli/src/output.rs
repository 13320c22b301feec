//! What the commands print: tables for people, with colour only on a terminal, and plain
//! lines for scripts.
//!
//! Stored text reaches people only through [`escape_controls`] (by [`Output::text`],
//! [`Output::log_entry`] and [`text_cell`]): whoever can write a log line must not be able to
//! move the cursor, retitle the window or reorder what an operator reads. JSON output is
//! written exact, one record a line ([`one_line_json`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

use comfy_table::{presets, Attribute, Cell, Color, ContentArrangement, Table};
use owo_colors::OwoColorize;
use task_state_core::{LogEntry, TaskRecord, TaskStatus};

/// Below this many columns a terminal's reported width is not believed: a pty that says 0
/// (or 1) would squeeze every column to a letter.
const MIN_TERMINAL_WIDTH: u16 = 20;

/// `--color`: when to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set to a non-empty value.
    Auto,
    /// Always, even into a pipe or with `NO_COLOR`.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (or is not) a terminal, given `NO_COLOR`.
    pub(crate) fn enabled(self, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            // no-color.org: set and not empty disables colour; empty does not count.
            ColorChoice::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// Buffered stdout, whether to colour it, and whether to fit tables to the terminal.
#[derive(Debug)]
pub(crate) struct Output {
    out: BufWriter<Stdout>,
    color: bool,
    terminal: bool,
}

impl Output {
    /// Colour as `--color` says (see [`ColorChoice::enabled`]).
    pub(crate) fn stdout(choice: ColorChoice) -> Self {
        let stdout = io::stdout();
        let terminal = stdout.is_terminal();
        let color = choice.enabled(terminal, std::env::var_os("NO_COLOR").as_deref());
        Output {
            out: BufWriter::new(stdout),
            color,
            terminal,
        }
    }

    /// Writes `text` and a newline, as it is: for text of our own (a rendered table, a
    /// count) or JSON. Stored text goes through [`Output::text`] or a [`text_cell`].
    pub(crate) fn line(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes stored text for people and a newline, its control characters escaped (see
    /// [`escape_controls`]).
    pub(crate) fn text(&mut self, text: &str) -> io::Result<()> {
        self.line(&escape_controls(text))
    }

    /// Writes one JSON value (a record) on one line (see [`one_line_json`]), exact
    /// otherwise.
    pub(crate) fn json_line(&mut self, json: &[u8]) -> io::Result<()> {
        self.out.write_all(&one_line_json(json))?;
        self.out.write_all(b"\n")
    }

    /// An empty table in the house style, with `header` when given.
    pub(crate) fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        if self.color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        // Wrap to the terminal only when it reports a usable width; otherwise (a pipe, or a
        // terminal that says 0 columns) every row stays on one line.
        let width = if self.terminal {
            terminal_width()
        } else {
            None
        };
        match width {
            Some(width) => {
                table
                    .set_width(width)
                    .set_content_arrangement(ContentArrangement::Dynamic);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        if !header.is_empty() {
            let cells = header.iter().map(|h| {
                let cell = Cell::new(h);
                if self.color {
                    cell.add_attribute(Attribute::Bold)
                } else {
                    cell
                }
            });
            table.set_header(cells);
        }
        table
    }

    /// Writes a table, without the padding that trails each line.
    pub(crate) fn print_table(&mut self, table: &Table) -> io::Result<()> {
        for line in table.lines() {
            self.line(line.trim_end())?;
        }
        Ok(())
    }

    /// A status cell, coloured by where the status is in the lifecycle.
    pub(crate) fn status_cell(&self, status: TaskStatus) -> Cell {
        let cell = Cell::new(status.as_str());
        if !self.color {
            return cell;
        }
        cell.fg(match status {
            TaskStatus::Pending | TaskStatus::Dispatching => Color::Yellow,
            TaskStatus::Running => Color::Cyan,
            TaskStatus::Completed => Color::Green,
            TaskStatus::Failed => Color::Red,
            TaskStatus::CancelRequested => Color::Magenta,
            TaskStatus::Cancelled => Color::DarkGrey,
        })
    }

    /// Writes one log entry as `<timestamp>  <message>`; an entry that does not parse is
    /// written as stored. Control characters are escaped either way.
    pub(crate) fn log_entry(&mut self, entry: &str) -> io::Result<()> {
        match LogEntry::parse(entry) {
            Ok(parsed) if self.color => {
                let stamp = parsed.at.to_string();
                let message = escape_controls(&parsed.message);
                self.line(&format!("{}  {message}", stamp.dimmed()))
            }
            Ok(parsed) => self.line(&format!(
                "{}  {}",
                parsed.at,
                escape_controls(&parsed.message)
            )),
            Err(_) => self.text(entry),
        }
    }

    /// Pushes out what is buffered: before waiting, and at the end.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// True for the characters that a terminal acts on instead of showing, or that reorder what
/// it shows: the C0 controls (tab and line feed among them), DEL, the C1 controls, the
/// bidirectional embeddings, overrides, isolates and marks (the "Trojan Source" characters)
/// and the Unicode line and paragraph separators.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Stored `text` as it may be shown on a terminal: each character that a terminal would act
/// on ([`acts_on_terminal`]) written as an escape, `\n`, `\r`, `\t`, `\x1b` for the other
/// ASCII controls and DEL, `\u{9b}` or `\u{202e}` for the others. Everything else, a
/// backslash included, is left as it is: human output is for reading, `--json` for exact
/// values.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(escaped, "\\x{:02x}", u32::from(c));
            }
            c if acts_on_terminal(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// A table cell of stored text, its control characters escaped.
pub(crate) fn text_cell(text: &str) -> Cell {
    Cell::new(escape_controls(text))
}

/// Valid JSON `json` on one line: as it is when it has no line break (as every writer of the
/// layout stores a record), else without the white space between its tokens. A line break
/// can only stand between tokens (inside a string it must be escaped), and nothing inside a
/// string is touched, so keys, their order, numbers (`1e400`, every digit of a big one) and
/// escapes stay as stored (`jq -c` would rewrite some of them).
pub(crate) fn one_line_json(json: &[u8]) -> Cow<'_, [u8]> {
    if !json.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Cow::Borrowed(json);
    }
    let mut compact = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            compact.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            compact.push(b);
        }
    }
    Cow::Owned(compact)
}

/// The width of the terminal on stdout, when it reports one worth wrapping to.
fn terminal_width() -> Option<u16> {
    let probe = Table::new();
    probe.width().filter(|w| *w >= MIN_TERMINAL_WIDTH)
}

/// The columns of `list`.
pub(crate) const LIST_HEADER: [&str; 8] = [
    "ID", "SERVICE", "USER", "STATUS", "PRIORITY", "CREATED", "UPDATED", "JOBS",
];

/// One `list` row.
pub(crate) fn list_row(out: &Output, record: &TaskRecord) -> Vec<Cell> {
    vec![
        text_cell(&record.task_id),
        text_cell(&record.service),
        text_cell(&record.user_id),
        out.status_cell(record.status),
        Cell::new(record.priority.as_str()),
        Cell::new(short_time(&record.created_at.to_string())),
        Cell::new(short_time(&record.updated_at.to_string())),
        text_cell(&record.jobs.join(",")),
    ]
}

/// `2025-11-17T10:00:16.515926+09:00` as `2025-11-17 10:00:16`: to the second, in the
/// configured zone that the record was written in.
fn short_time(stamp: &str) -> String {
    match stamp.get(..19) {
        Some(head) => head.replacen('T', " ", 1),
        None => stamp.to_owned(),
    }
}

/// The `get` view of a record: one field a row.
pub(crate) fn record_table(out: &Output, record: &TaskRecord) -> Table {
    let mut table = out.table(&[]);
    let mut field = |name: &str, value: Cell| {
        let name = text_cell(name);
        let name = if out.color {
            name.add_attribute(Attribute::Bold)
        } else {
            name
        };
        table.add_row(vec![name, value]);
    };
    let text = text_cell;
    let optional = |value: &Option<String>| text_cell(value.as_deref().unwrap_or("-"));
    // Values that another tool stored pretty-printed are shown on one line.
    let json = |value: &str| text_cell(&String::from_utf8_lossy(&one_line_json(value.as_bytes())));
    field("task id", text(&record.task_id));
    field("service", text(&record.service));
    field("user", text(&record.user_id));
    field("status", out.status_cell(record.status));
    field("priority", text(record.priority.as_str()));
    field("created", text(&record.created_at.to_string()));
    field("updated", text(&record.updated_at.to_string()));
    field("jobs", text(&or_dash(record.jobs.join(", "))));
    field("parameters", json(&record.parameters.to_string()));
    field("pod status", optional(&record.result.pod_status));
    field("launcher output", optional(&record.result.launcher_output));
    for (name, value) in &record.extra {
        field(name, json(value.get()));
    }
    field("logs", text(&record.logs.len().to_string()));
    table
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// The log entries of a record as a table: time, message.
pub(crate) fn logs_table(out: &Output, record: &TaskRecord) -> Table {
    let mut table = out.table(&["TIME", "MESSAGE"]);
    for entry in &record.logs {
        match LogEntry::parse(entry) {
            Ok(parsed) => table.add_row(vec![
                Cell::new(parsed.at.to_string()),
                text_cell(&parsed.message),
            ]),
            Err(_) => table.add_row(vec![Cell::new(""), text_cell(entry)]),
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_controls("a\u{1b}[2J\u{7}\r\n\t\u{7f}\u{9b}\u{202e}\u{2066}b\\x1b 한 ✓"),
            r"a\x1b[2J\x07\r\n\t\x7f\u{9b}\u{202e}\u{2066}b\x1b 한 ✓"
        );
        assert!(matches!(
            escape_controls("plain ü"),
            Cow::Borrowed("plain ü")
        ));
    }

    #[test]
    fn json_on_one_line_keeps_strings_numbers_and_one_line_input() {
        let pretty = b"{\n  \"a\": \"x \\\" \\n y\",\r\n  \"n\": 1e400\n}";
        assert_eq!(&*one_line_json(pretty), br#"{"a":"x \" \n y","n":1e400}"#);
        let one = br#"{"a": "x",  "b": [1, 2]}"#;
        assert!(matches!(one_line_json(one), Cow::Borrowed(b) if b == one));
    }

    proptest! {
        #[test]
        fn escaped_text_has_nothing_a_terminal_acts_on(text in any::<String>()) {
            let escaped = escape_controls(&text);
            prop_assert!(!escaped.chars().any(acts_on_terminal));
            if !text.chars().any(acts_on_terminal) {
                prop_assert_eq!(&*escaped, text.as_str());
            }
        }

        #[test]
        fn pretty_json_on_one_line_is_the_same_value(
            value in proptest::arbitrary::any::<Vec<(String, Option<i64>)>>()
        ) {
            let value: serde_json::Value = value
                .into_iter()
                .map(|(k, v)| (k.clone(), serde_json::json!([k, v])))
                .collect::<serde_json::Map<_, _>>()
                .into();
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            let one = one_line_json(&pretty);
            prop_assert!(!one.contains(&b'\n'));
            prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&one).unwrap(), value);
        }
    }

    #[test]
    fn short_times_drop_the_fraction_and_offset() {
        assert_eq!(
            short_time("2025-11-17T10:00:16.515926+09:00"),
            "2025-11-17 10:00:16"
        );
        assert_eq!(
            short_time("2025-11-17T10:00:16+09:00"),
            "2025-11-17 10:00:16"
        );
        assert_eq!(short_time("odd"), "odd");
    }
}
