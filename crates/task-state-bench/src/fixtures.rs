//! The records and log messages every benchmark uses, so that the Redis run, the
//! `redis-benchmark` limit and the Criterion benchmarks all handle the same bytes.

use std::sync::LazyLock;

use task_state_core::serde_json::{json, Map, Value};
use task_state_core::{format_log_entry_at, TaskRecord, TaskStatus, TaskTime, Zone};

/// The log message of every benchmarked append: the length of a typical worker line.
pub const LOG_MESSAGE: &str = "processed chunk 42 of 128: 5000 rows written, 0 rejected";

/// Log entries a benchmark record starts with.
pub const INITIAL_LOGS: usize = 5;

const SERVICES: [&str; 4] = ["render", "analytics", "ingest", "export"];
const USERS: usize = 50;

static ZONE: LazyLock<Zone> = LazyLock::new(Zone::default);

/// The zone the fixtures stamp their times in (the repository default, `Asia/Seoul`).
pub fn zone() -> &'static Zone {
    &ZONE
}

/// A fixed instant, so that encoded records have the same size in every run.
pub fn fixed_time() -> TaskTime {
    TaskTime::from_timestamp(
        "2025-11-17T01:00:16.515926Z"
            .parse()
            .expect("a valid timestamp"),
        zone(),
    )
}

/// A typical record (about 1 KiB of JSON): a few parameters and [`INITIAL_LOGS`] log
/// entries, spread over 4 services and 50 users by `n`.
pub fn task_record(task_id: &str, n: usize) -> TaskRecord {
    record_with_logs(task_id, n, INITIAL_LOGS)
}

/// [`task_record`] with `logs` log entries.
pub fn record_with_logs(task_id: &str, n: usize, logs: usize) -> TaskRecord {
    let now = fixed_time();
    let mut record = TaskRecord::new_at(
        task_id,
        SERVICES[n % SERVICES.len()],
        format!("user{:02}", n % USERS),
        TaskStatus::Running,
        now,
    )
    .with_parameters(parameters(n));
    record.logs = (0..logs)
        .map(|k| format_log_entry_at(&format!("step {k}: {LOG_MESSAGE}"), now))
        .collect();
    record
}

fn parameters(n: usize) -> Map<String, Value> {
    let value = json!({
        "input": format!("s3://dms-inputs/projects/p{:04}/runs/{n:08}/input.parquet", n % 1000),
        "output": format!("s3://dms-outputs/projects/p{:04}/runs/{n:08}/", n % 1000),
        "image": "registry.example.invalid/dms/worker:2025.11.3",
        "threads": 4,
        "memory_mib": 8192,
        "ratio": 0.30000000000000004,
        "retries": {"max": 3, "backoff_seconds": [1, 5, 30]},
        "labels": ["nightly", "gpu-optional", "priority-normal"],
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `count` log messages, for preparing tasks with many log entries.
pub fn messages(count: usize) -> Vec<String> {
    (0..count)
        .map(|k| format!("line {k}: {LOG_MESSAGE}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_and_round_trip() {
        let record = task_record("17", 17);
        task_state_core::validate_record(&record).unwrap();
        let json = record.to_json();
        assert!((700..1500).contains(&json.len()), "{}", json.len());
        assert_eq!(TaskRecord::from_json(&json).unwrap().to_json(), json);
    }

    #[test]
    fn records_of_one_shape_have_one_size() {
        assert_eq!(
            task_record("10", 10).to_json().len(),
            task_record("11", 11).to_json().len()
        );
    }
}
