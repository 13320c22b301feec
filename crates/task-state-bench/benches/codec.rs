//! Micro-benchmarks of the formats: record encoding and decoding, log entries.
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use task_state_bench::fixtures;
use task_state_core::{format_log_entry_at, LogEntry, TaskRecord};

fn records(c: &mut Criterion) {
    for (name, logs) in [("small", fixtures::INITIAL_LOGS), ("1000_logs", 1_000)] {
        let record = fixtures::record_with_logs("12345", 12_345, logs);
        let json = record.to_json();
        let mut group = c.benchmark_group(format!("record_{name}"));
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function("to_json", |b| b.iter(|| black_box(&record).to_json()));
        group.bench_function("from_json", |b| {
            b.iter(|| TaskRecord::from_json(black_box(&json)).expect("a record"))
        });
        group.finish();
    }
}

fn log_entries(c: &mut Criterion) {
    let at = fixtures::fixed_time();
    let entry = format_log_entry_at(fixtures::LOG_MESSAGE, at);
    let mut group = c.benchmark_group("log_entry");
    group.bench_function("format_log_entry_at", |b| {
        b.iter(|| format_log_entry_at(black_box(fixtures::LOG_MESSAGE), black_box(at)))
    });
    group.bench_function("parse", |b| {
        b.iter(|| LogEntry::parse(black_box(&entry)).expect("an entry"))
    });
    group.finish();
}

criterion_group!(benches, records, log_entries);
criterion_main!(benches);
