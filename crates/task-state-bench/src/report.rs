//! The figures of a run: operation rows and targets, printed as a table or as JSON lines.

use serde_json::{json, Value};

/// The fields of a JSON line, in the order they were added.
pub type Fields = indexmap::IndexMap<String, Value>;

/// One measured operation.
#[derive(Debug, Clone)]
pub struct Row {
    /// The operation's name, such as `append_log` or `limit_get`.
    pub op: String,
    /// Operations per second (records per second for the stream).
    pub ops_per_sec: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency in microseconds.
    pub p99_us: f64,
    /// Operations in flight.
    pub concurrency: usize,
    /// A short human note for the table.
    pub note: String,
    /// Further figures for the JSON line.
    pub extra: Fields,
}

impl Row {
    /// A row without note or extra figures.
    pub fn new(
        op: impl Into<String>,
        ops_per_sec: f64,
        p50_us: f64,
        p99_us: f64,
        concurrency: usize,
    ) -> Self {
        Row {
            op: op.into(),
            ops_per_sec,
            p50_us,
            p99_us,
            concurrency,
            note: String::new(),
            extra: Fields::new(),
        }
    }

    /// Adds a note for the table (builder style).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Adds a figure to the JSON line (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON line: `op`, `ops_per_sec`, `p50_us`, `p99_us`, `concurrency`, then the extras.
    pub fn to_json(&self) -> Fields {
        let mut object = Fields::new();
        object.insert("op".into(), json!(self.op));
        object.insert("ops_per_sec".into(), json!(round(self.ops_per_sec, 1)));
        object.insert("p50_us".into(), json!(round(self.p50_us, 1)));
        object.insert("p99_us".into(), json!(round(self.p99_us, 1)));
        object.insert("concurrency".into(), json!(self.concurrency));
        for (k, v) in &self.extra {
            object.insert(k.clone(), v.clone());
        }
        object
    }
}

/// One target of the issue, and whether this run met it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The figure, as shown.
    pub shown: String,
    /// The figure, for the JSON line.
    pub value: Option<f64>,
    /// The goal, as shown (`>= 80%`).
    pub goal: String,
    /// Met, missed, or not measured in this run.
    pub pass: Option<bool>,
}

impl Target {
    /// `PASS`, `MISS` or `n/a`.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }

    /// The JSON line: `target`, `value`, `shown`, `goal`, `pass`, `verdict`.
    pub fn to_json(&self) -> Fields {
        [
            ("target", json!(self.name)),
            ("value", json!(self.value.map(|v| round(v, 4)))),
            ("shown", json!(self.shown)),
            ("goal", json!(self.goal)),
            ("pass", json!(self.pass)),
            ("verdict", json!(self.verdict())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Facts about the run: server version, URL kind, pool size, options.
    pub context: Fields,
    /// The operations, in the order they ran.
    pub rows: Vec<Row>,
    /// The targets.
    pub targets: Vec<Target>,
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Prints one JSON object a line: a `context` line, each operation, each target.
pub fn print_json(results: &Results) {
    let mut context = results.context.clone();
    context.insert("op".into(), json!("context"));
    println!("{}", line(&context));
    for row in &results.rows {
        println!("{}", line(&row.to_json()));
    }
    for target in &results.targets {
        println!("{}", line(&target.to_json()));
    }
}

/// One JSON object, compact, its fields in order.
fn line(fields: &Fields) -> String {
    // Maps with string keys and JSON values always serialize.
    serde_json::to_string(fields).unwrap_or_default()
}

/// Prints the figures as a table, then the targets.
pub fn print_table(results: &Results) {
    for (k, v) in &results.context {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        println!("{k}: {v}");
    }
    println!();
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>5}  notes",
        "operation", "ops/s", "p50 µs", "p99 µs", "conc"
    );
    println!("{}", "-".repeat(100));
    for row in &results.rows {
        println!(
            "{:<34} {:>12.0} {:>10.1} {:>10.1} {:>5}  {}",
            row.op, row.ops_per_sec, row.p50_us, row.p99_us, row.concurrency, row.note
        );
    }
    println!();
    println!("{:<52} {:>14} {:>12}  result", "target", "measured", "goal");
    println!("{}", "-".repeat(90));
    for target in &results.targets {
        println!(
            "{:<52} {:>14} {:>12}  {}",
            target.name,
            target.shown,
            target.goal,
            target.verdict()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_the_required_fields_first() {
        let row = Row::new("get", 1234.56, 100.04, 250.0, 16).with("record_bytes", 900);
        let line = line(&row.to_json());
        assert!(
            line.starts_with(
                r#"{"op":"get","ops_per_sec":1234.6,"p50_us":100.0,"p99_us":250.0,"concurrency":16"#
            ),
            "{line}"
        );
        assert!(line.contains(r#""record_bytes":900"#));
    }

    #[test]
    fn targets_say_pass_miss_or_na() {
        let mut t = Target {
            name: "x".into(),
            shown: "1".into(),
            value: Some(1.0),
            goal: ">= 1".into(),
            pass: Some(true),
        };
        assert_eq!(t.verdict(), "PASS");
        t.pass = Some(false);
        assert_eq!(t.verdict(), "MISS");
        t.pass = None;
        assert_eq!(t.to_json()["verdict"], "n/a");
        assert_eq!(
            line(&t.to_json()),
            r#"{"target":"x","value":1.0,"shown":"1","goal":">= 1","pass":null,"verdict":"n/a"}"#
        );
    }
}
