//! What the commands print: tables for people, with colour only on a terminal, and plain
//! lines for scripts.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

use comfy_table::{presets, Attribute, Cell, Color, ContentArrangement, Table};
use owo_colors::OwoColorize;
use task_state_core::{LogEntry, TaskRecord, TaskStatus};

use crate::cli::ColorChoice;

/// Below this many columns a terminal's reported width is not believed: a pty that says 0
/// (or 1) would squeeze every column to a letter.
const MIN_TERMINAL_WIDTH: u16 = 20;

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

    /// Writes `text` and a newline.
    pub(crate) fn line(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes raw bytes and a newline.
    pub(crate) fn raw_line(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
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
    /// written as stored.
    pub(crate) fn log_entry(&mut self, entry: &str) -> io::Result<()> {
        match LogEntry::parse(entry) {
            Ok(parsed) if self.color => {
                let stamp = parsed.at.to_string();
                self.line(&format!("{}  {}", stamp.dimmed(), parsed.message))
            }
            Ok(parsed) => self.line(&format!("{}  {}", parsed.at, parsed.message)),
            Err(_) => self.line(entry),
        }
    }

    /// Pushes out what is buffered: before waiting, and at the end.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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
        Cell::new(&record.task_id),
        Cell::new(&record.service),
        Cell::new(&record.user_id),
        out.status_cell(record.status),
        Cell::new(record.priority.as_str()),
        Cell::new(short_time(&record.created_at.to_string())),
        Cell::new(short_time(&record.updated_at.to_string())),
        Cell::new(record.jobs.join(",")),
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
        let name = Cell::new(name);
        let name = if out.color {
            name.add_attribute(Attribute::Bold)
        } else {
            name
        };
        table.add_row(vec![name, value]);
    };
    let text = |value: &str| Cell::new(value);
    let optional = |value: &Option<String>| Cell::new(value.as_deref().unwrap_or("-"));
    field("task id", text(&record.task_id));
    field("service", text(&record.service));
    field("user", text(&record.user_id));
    field("status", out.status_cell(record.status));
    field("priority", text(record.priority.as_str()));
    field("created", text(&record.created_at.to_string()));
    field("updated", text(&record.updated_at.to_string()));
    field("jobs", text(&or_dash(record.jobs.join(", "))));
    field("parameters", text(&record.parameters.to_string()));
    field("pod status", optional(&record.result.pod_status));
    field("launcher output", optional(&record.result.launcher_output));
    for (name, value) in &record.extra {
        field(name, text(value.get()));
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
            Ok(parsed) => table.add_row(vec![parsed.at.to_string(), parsed.message]),
            Err(_) => table.add_row(vec![String::new(), entry.clone()]),
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

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
