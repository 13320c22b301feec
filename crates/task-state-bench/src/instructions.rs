//! Instructions a call costs inside Redis (`task-state-bench --instructions`): a private
//! `redis-server` runs under valgrind's callgrind, which counts the instructions the server
//! executes while one operation after another runs, one call at a time. A count does not
//! depend on what else the machine is doing, unlike a time: two runs of the same binaries
//! give the scripts' figures within a percent or two (the server's timer runs during the
//! count too, a larger share of a plain `SET`), so a change of the scripts can be measured
//! on a busy machine. The figures are of the whole server (reading the request,
//! the command, writing the reply), next to a plain `SET` and `GET` of the same record
//! measured the same way. See `docs/benchmarks.md`.

mod callgrind;
mod cluster;

pub use cluster::run_write_paths_cluster;

use anyhow::{ensure, Context, Result};
use task_state_core::{layout, TaskRepository, TaskStatus};
use task_state_redis::{RedisTaskRepository, WritePath};

use crate::admin;
use crate::fixtures::{self, LOG_MESSAGE};
use crate::suite::connect;
use crate::write_path::{Attempt, Edit, Editor, Guard};
use callgrind::Callgrind;

/// One measured operation.
#[derive(Debug, Clone)]
pub struct InstructionRow {
    /// The operation.
    pub op: String,
    /// Calls measured.
    pub calls: usize,
    /// Instructions the server executed per call.
    pub per_call: f64,
    /// The record's size before the calls, in bytes (the mean over the tasks).
    pub record_bytes: f64,
    /// What the row measures.
    pub note: String,
}

/// What a measured call does, on task `id`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Set,
    Get,
    Save,
    SetStatus,
    AppendLog,
    AppendLogRecord,
    UpdateResult,
    Transition,
    SetJobs,
    Delete,
}

impl Op {
    async fn call(self, repo: &RedisTaskRepository, id: &str) -> Result<()> {
        let found = match self {
            Op::Set => unreachable!("a plain SET is sent by run"),
            Op::Get => repo.get(id).await?.is_some(),
            Op::Save => {
                repo.save(fixtures::task_record(id, 0)).await?;
                true
            }
            Op::SetStatus => repo
                .set_status(id, TaskStatus::Running, Some(LOG_MESSAGE))
                .await?
                .is_some(),
            Op::AppendLog => repo.append_logs(id, &[LOG_MESSAGE.to_owned()]).await?,
            Op::AppendLogRecord => repo.append_log(id, LOG_MESSAGE).await?.is_some(),
            Op::UpdateResult => repo
                .update_result(id, Some("phase=Running"), Some("rows=5000"))
                .await?
                .is_some(),
            Op::Transition => repo
                .transition(id, &[TaskStatus::Running], TaskStatus::Running, None)
                .await?
                .is_some(),
            Op::SetJobs => repo
                .set_jobs(id, &["job-1".to_owned(), "job-2".to_owned()])
                .await?
                .is_some(),
            Op::Delete => repo.delete(id).await?,
        };
        ensure!(found, "no task {id}");
        Ok(())
    }
}

/// A row to measure: an operation on tasks prepared with `logs` log entries, after one call
/// of the operation when `warm` (else the measured call is the first after the save).
struct Case {
    name: &'static str,
    op: Op,
    logs: usize,
    warm: bool,
    note: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "set",
        op: Op::Set,
        logs: 5,
        warm: false,
        note: "plain SET of the record (redis-benchmark's kind of call)",
    },
    Case {
        name: "get",
        op: Op::Get,
        logs: 5,
        warm: false,
        note: "get: GET of the record",
    },
    Case {
        name: "save",
        op: Op::Save,
        logs: 5,
        warm: false,
        note: "save of the same record again",
    },
    Case {
        name: "set_status",
        op: Op::SetStatus,
        logs: 5,
        warm: true,
        note: "with a log entry, returns the record; hint trusted",
    },
    Case {
        name: "set_status_after_save",
        op: Op::SetStatus,
        logs: 5,
        warm: false,
        note: "the first status change after a save (its layout hint)",
    },
    Case {
        name: "append_log",
        op: Op::AppendLog,
        logs: 5,
        warm: true,
        note: "append_logs with one message; hint trusted",
    },
    Case {
        name: "append_log_after_save",
        op: Op::AppendLog,
        logs: 5,
        warm: false,
        note: "the first append after a save (its layout hint)",
    },
    Case {
        name: "append_log_record",
        op: Op::AppendLogRecord,
        logs: 5,
        warm: true,
        note: "append_log: returns the record",
    },
    Case {
        name: "update_result",
        op: Op::UpdateResult,
        logs: 5,
        warm: true,
        note: "both fields, returns the record",
    },
    Case {
        name: "transition",
        op: Op::Transition,
        logs: 5,
        warm: true,
        note: "from [running], no log entry",
    },
    Case {
        name: "set_jobs",
        op: Op::SetJobs,
        logs: 5,
        warm: true,
        note: "two job ids",
    },
    Case {
        name: "append_log_at_1000",
        op: Op::AppendLog,
        logs: 1000,
        warm: true,
        note: "a task with 1,000 log entries",
    },
    Case {
        name: "set_status_at_1000",
        op: Op::SetStatus,
        logs: 1000,
        warm: true,
        note: "a task with 1,000 log entries",
    },
];

/// Measures every operation on `tasks` tasks (one call each), `only` limiting the rows by
/// name (a row runs when its name starts with one of them).
///
/// # Errors
/// When valgrind is missing, the server does not start, or an operation fails.
pub async fn run(tasks: usize, only: Option<&[String]>) -> Result<Vec<InstructionRow>> {
    let server = Callgrind::start()?;
    let repo = connect(&server.url(), 1).await?;
    let admin = repo.raw_writer().clone();
    repo.load_scripts().await?;
    let mut rows = Vec::new();
    for case in CASES {
        if only.is_some_and(|o| !o.iter().any(|w| case.name.starts_with(w.as_str()))) {
            continue;
        }
        // Large records cost a thousand times more: fewer of them give the same precision.
        let count = if case.logs > 100 {
            (tasks / 20).max(5)
        } else {
            tasks
        };
        admin::flushdb(&admin).await?;
        let ids: Vec<String> = (0..count).map(|n| format!("{}", n + 1)).collect();
        let mut bytes = 0.0;
        for (n, id) in ids.iter().enumerate() {
            repo.save(fixtures::record_with_logs(id, n, case.logs))
                .await?;
            if case.warm {
                case.op.call(&repo, id).await?;
            }
            bytes += admin::strlen(&admin, &layout::record_key(id)).await? as f64;
        }
        let total = if case.op == Op::Set {
            let mut records = Vec::with_capacity(ids.len());
            for id in &ids {
                let raw = repo.get_raw(id).await?.context("no record")?;
                records.push((format!("plain:{id}"), String::from_utf8(raw)?));
            }
            server
                .count(async {
                    for (key, record) in &records {
                        admin::set(&admin, key, record).await?;
                    }
                    Ok(())
                })
                .await?
        } else {
            server
                .count(async {
                    for id in &ids {
                        case.op.call(&repo, id).await?;
                    }
                    Ok(())
                })
                .await?
        };
        rows.push(InstructionRow {
            op: case.name.to_owned(),
            calls: count,
            per_call: total as f64 / count as f64,
            record_bytes: bytes / count as f64,
            note: case.note.to_owned(),
        });
    }
    repo.close().await;
    Ok(rows)
}

/// Prints the rows with each one's multiple of the plain `SET`.
pub fn print_table(rows: &[InstructionRow]) {
    let set = rows.iter().find(|r| r.op == "set").map(|r| r.per_call);
    println!(
        "{:<24} {:>7} {:>14} {:>8} {:>10}  notes",
        "operation", "calls", "instr/call", "x SET", "bytes"
    );
    println!("{}", "-".repeat(100));
    for r in rows {
        let multiple = set.map_or("n/a".to_owned(), |s| format!("{:.1}", r.per_call / s));
        println!(
            "{:<24} {:>7} {:>14.0} {:>8} {:>10.0}  {}",
            r.op, r.calls, r.per_call, multiple, r.record_bytes, r.note
        );
    }
}

/// A way of writing a mutation, for the rows of [`run_write_paths`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// The baseline: `GET` of the record, then `SET` of the same bytes (`KEEPTTL`).
    GetSet,
    /// The scripts, as the repository calls them (`WritePath::Script`).
    Script,
    /// The repository as built, on its optimistic write path at every size
    /// (`WritePath::Auto`, the default: `WATCH` on the crate's own connections, which keep
    /// what they read of the index sets and metadata hashes). Every task of the row is saved
    /// before the first is edited.
    Built,
    /// [`Design::Built`], each task edited before the next is saved: a save changes the
    /// index sets that every task is in, so the counted edit reads its task's membership
    /// in them again.
    BuiltAmidSaves,
    /// [`crate::write_path`]'s optimistic edit: `WATCH`, read, `MULTI` … `EXEC`.
    Watch,
    /// [`crate::write_path`]'s `SET … IFEQ` (Valkey 8.1).
    IfEq,
    /// [`Design::Watch`], lean ([`Editor::lean`]): no index reads while they are fresh.
    WatchLean,
    /// [`Design::IfEq`], lean.
    IfEqLean,
}

impl Design {
    fn name(self) -> &'static str {
        match self {
            Design::GetSet => "get+set",
            Design::Script => "script",
            Design::Built => "optimistic",
            Design::BuiltAmidSaves => "optimistic-amid-saves",
            Design::Watch => "watch",
            Design::IfEq => "ifeq",
            Design::WatchLean => "watch-lean",
            Design::IfEqLean => "ifeq-lean",
        }
    }

    /// What a row of the design measures.
    fn note(self) -> &'static str {
        match self {
            Design::GetSet => "GET of the record, SET of the same bytes (KEEPTTL)",
            Design::Script => "the script, as the repository calls it",
            Design::Built => "the repository's default: watch on its own tracking connections",
            Design::BuiltAmidSaves => "the same, each task saved after the previous one's edit",
            Design::Watch => "WATCH record+metadata, reads, MULTI/SET/index+metadata writes/EXEC",
            Design::IfEq => {
                "reads, SET IFEQ <old> KEEPTTL, then PEXPIRE GT + index/metadata writes"
            }
            Design::WatchLean => "watch, no index reads or writes while they are fresh",
            Design::IfEqLean => "ifeq, no index reads or writes while they are fresh",
        }
    }
}

/// The mutations of the write-path rows, each with today's call of it.
const MUTATIONS: &[(&str, Op)] = &[
    ("save", Op::Save),
    ("set_status", Op::SetStatus),
    ("append_log", Op::AppendLog),
    ("update_result", Op::UpdateResult),
    ("set_jobs", Op::SetJobs),
    ("transition", Op::Transition),
    ("delete", Op::Delete),
];

/// The record sizes of the write-path rows: a name and the log entries of the record
/// (~1.1 KiB, ~102 KiB, ~1.0 MiB).
const SIZES: &[(&str, usize)] = &[("1k", 5), ("100k", 1_000), ("1m", 10_000)];

/// `op` as an [`Edit`] of the prototypes; `None` where they have none (delete, which reads no
/// record).
fn edit_of(op: Op, id: &str, n: usize, logs: usize) -> Option<Edit> {
    Some(match op {
        Op::Save => Edit::Save(Box::new(fixtures::record_with_logs(id, n, logs))),
        Op::SetStatus => Edit::Status {
            to: TaskStatus::Running,
            from: Vec::new(),
            entry: Some(LOG_MESSAGE.to_owned()),
        },
        Op::Transition => Edit::Status {
            to: TaskStatus::Running,
            from: vec![TaskStatus::Running],
            entry: None,
        },
        Op::AppendLog => Edit::Append(vec![LOG_MESSAGE.to_owned()]),
        Op::UpdateResult => Edit::Result {
            pod_status: Some("phase=Running".to_owned()),
            launcher_output: Some("rows=5000".to_owned()),
        },
        Op::SetJobs => Edit::Jobs(vec!["job-1".to_owned(), "job-2".to_owned()]),
        _ => return None,
    })
}

/// One call of `op` in `design` on task `id` (the `n`th, with `logs` log entries).
async fn call_design(
    design: Design,
    op: Op,
    repos: &[RedisTaskRepository; 2],
    editors: Option<&[Editor; 2]>,
    (id, n, logs): (&str, usize, usize),
) -> Result<()> {
    let built = matches!(design, Design::Built | Design::BuiltAmidSaves);
    let repo = &repos[usize::from(built)];
    let guard = match design {
        // The record of the row's size again (Op::call saves a ~1 KiB one).
        Design::Script | Design::Built | Design::BuiltAmidSaves if op == Op::Save => {
            repo.save(fixtures::record_with_logs(id, n, logs)).await?;
            return Ok(());
        }
        Design::Script | Design::Built | Design::BuiltAmidSaves => return op.call(repo, id).await,
        Design::Watch | Design::WatchLean => Guard::Watch,
        Design::IfEq | Design::IfEqLean => Guard::IfEq,
        Design::GetSet => unreachable!("GET+SET is sent by run_write_paths"),
    };
    let edit = edit_of(op, id, n, logs).context("no prototype of this mutation")?;
    let editors = editors.context("no prototypes on this server")?;
    let editor = &editors[usize::from(matches!(design, Design::WatchLean | Design::IfEqLean))];
    let attempt = editor.attempt(id, &edit, guard).await?;
    ensure!(
        attempt == Attempt::Applied,
        "{} of task {id}: {attempt:?}",
        design.name()
    );
    Ok(())
}

/// The write-path rows of issue 21 on a server of `binary` under callgrind: at each size
/// of ~1 KiB, ~100 KiB and ~1 MiB, a `GET`+`SET` of the record, then every mutation in each of `designs`
/// (delete in [`Design::Script`] only), each on fresh tasks edited once the same way before
/// the count. `tasks` calls at ~1 KiB, a twentieth (at least 5) at ~100 KiB and a fiftieth
/// (at least 3) at ~1 MiB. A first row, `idle`, is a count with no call: what the server's
/// timer and the toggling of the count add to each row (to be divided by its calls). Rows are named `<mutation>/<design>@<size>`, with `server`
/// (e.g. `valkey`) after the size when given; `only` selects them by prefix.
///
/// # Errors
/// As [`run`]; when a prototype's edit does not apply.
pub async fn run_write_paths(
    binary: &str,
    server_name: Option<&str>,
    designs: &[Design],
    tasks: usize,
    only: Option<&[String]>,
) -> Result<Vec<InstructionRow>> {
    let server = Callgrind::start_with(binary)?;
    let clients = WritePathClients::connect(&server.url()).await?;
    let suffix = server_name.map_or(String::new(), |s| format!(" {s}"));
    let idle = server.count(async { Ok(()) }).await?;
    let mut rows = vec![InstructionRow {
        op: format!("idle{suffix}"),
        calls: 1,
        per_call: idle as f64,
        record_bytes: 0.0,
        note: "a count with no call: the timer and the toggles, in every row".to_owned(),
    }];
    for &(size, logs) in SIZES {
        let count = calls_at(tasks, logs);
        for (name, design, op) in write_path_plan(designs) {
            let name = format!("{name}@{size}{suffix}");
            if only.is_some_and(|o| !o.iter().any(|w| name.starts_with(w.as_str()))) {
                continue;
            }
            let (total, bytes) = clients.count(&server, design, op, count, logs).await?;
            rows.push(InstructionRow {
                op: name,
                calls: count,
                per_call: total as f64 / count as f64,
                record_bytes: bytes / count as f64,
                note: design.note().to_owned(),
            });
        }
    }
    clients.close().await;
    Ok(rows)
}

/// The calls of a write-path row on records of `logs` log entries, `tasks` at ~1 KiB: a
/// twentieth (at least 5) at ~100 KiB, a fiftieth (at least 3) at ~1 MiB, where a call costs
/// a hundred to a thousand times more.
fn calls_at(tasks: usize, logs: usize) -> usize {
    match logs {
        0..=100 => tasks,
        101..=2_000 => (tasks / 20).max(5),
        _ => (tasks / 50).max(3),
    }
}

/// The rows of a size in [`run_write_paths`], each a name (`<mutation>/<design>`), its
/// design and its mutation: `get+set` first, then every mutation in each of `designs` that
/// has it (the prototypes have no delete).
fn write_path_plan(designs: &[Design]) -> Vec<(String, Design, Op)> {
    let mut plan = vec![("get+set".to_owned(), Design::GetSet, Op::Get)];
    for &(name, op) in MUTATIONS {
        for &design in designs {
            if matches!(
                design,
                Design::Script | Design::Built | Design::BuiltAmidSaves
            ) || edit_of(op, "1", 0, 0).is_some()
            {
                plan.push((format!("{name}/{}", design.name()), design, op));
            }
        }
    }
    plan
}

/// The clients of the write-path rows on one server: the repository on the scripts and on
/// its optimistic write path, and the prototypes' editor, plain and lean (the `repos` and
/// `editors` of [`call_design`]).
struct WritePathClients {
    repos: [RedisTaskRepository; 2],
    editors: [Editor; 2],
}

impl WritePathClients {
    /// Connects each client to `url`, and loads the scripts.
    async fn connect(url: &str) -> Result<Self> {
        let repo = crate::suite::connect_with(url, 1, WritePath::Script).await?;
        let built = crate::suite::connect_with(url, 1, WritePath::Auto).await?;
        repo.load_scripts().await?;
        let ttl = repo.settings().ttl_seconds();
        let zone = fixtures::zone();
        let editors = [
            Editor::connect(url, ttl, zone.clone()).await?,
            Editor::connect(url, ttl, zone.clone()).await?.lean(true),
        ];
        Ok(WritePathClients {
            repos: [repo, built],
            editors,
        })
    }

    /// The pool of the repository on the scripts, for the bench's own commands.
    fn admin(&self) -> &fred::prelude::Pool {
        self.repos[0].raw_writer()
    }

    /// The instructions `server` executes for `count` calls of `op` in `design`, and the
    /// records' bytes before them (summed): on fresh tasks of `logs` log entries, each edited
    /// once the same way before the count (but for a delete and the GET+SET).
    async fn count(
        &self,
        server: &Callgrind,
        design: Design,
        op: Op,
        count: usize,
        logs: usize,
    ) -> Result<(u64, f64)> {
        let admin = self.admin();
        admin::flushdb(admin).await?;
        let ids: Vec<String> = (0..count).map(|n| format!("{}", n + 1)).collect();
        let mut bytes = 0.0;
        let amid_saves = design == Design::BuiltAmidSaves;
        for (n, id) in ids.iter().enumerate() {
            self.repos[0]
                .save(fixtures::record_with_logs(id, n, logs))
                .await?;
            if amid_saves && !matches!(op, Op::Delete | Op::Get) {
                call_design(design, op, &self.repos, Some(&self.editors), (id, n, logs)).await?;
            }
        }
        for (n, id) in ids.iter().enumerate() {
            if !amid_saves && !matches!(op, Op::Delete | Op::Get) {
                call_design(design, op, &self.repos, Some(&self.editors), (id, n, logs)).await?;
            }
            bytes += admin::strlen(admin, &layout::record_key(id)).await? as f64;
        }
        // A delete edits no task before the count: one of another task first, so that the
        // count holds no client's first use (its connections made, its scripts loaded).
        if op == Op::Delete {
            self.repos[0]
                .save(fixtures::record_with_logs("0", 0, logs))
                .await?;
            call_design(design, op, &self.repos, Some(&self.editors), ("0", 0, logs)).await?;
        }
        let total = server
            .count(async {
                for (n, id) in ids.iter().enumerate() {
                    if design == Design::GetSet {
                        get_set(admin, id).await?;
                    } else {
                        call_design(design, op, &self.repos, Some(&self.editors), (id, n, logs))
                            .await?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok((total, bytes))
    }

    /// Closes every client.
    async fn close(&self) {
        for editor in &self.editors {
            editor.close().await;
        }
        for repo in &self.repos {
            repo.close().await;
        }
    }
}

/// The baseline of the write-path rows: a `GET` of task `id`'s record, then a `SET` of the
/// same bytes (`KEEPTTL`).
async fn get_set(admin: &fred::prelude::Pool, id: &str) -> Result<()> {
    let key = layout::record_key(id);
    let record = admin::command(admin, "GET", &[&key]).await?;
    let record = admin::text(&record).context("no record")?;
    admin::command(admin, "SET", &[&key, &record, "KEEPTTL"]).await?;
    Ok(())
}

/// Prints write-path rows with each one's multiple of the `GET`+`SET` of its size and server.
pub fn print_write_paths(rows: &[InstructionRow]) {
    println!(
        "{:<36} {:>6} {:>14} {:>10} {:>10}  notes",
        "operation", "calls", "instr/call", "x GET+SET", "bytes"
    );
    println!("{}", "-".repeat(110));
    for r in rows {
        let place = r.op.split_once('@').map_or("", |(_, p)| p);
        let base = rows
            .iter()
            .find(|b| b.op == format!("get+set@{place}"))
            .map(|b| b.per_call);
        let multiple = base.map_or("n/a".to_owned(), |b| format!("{:.2}", r.per_call / b));
        println!(
            "{:<36} {:>6} {:>14.0} {:>10} {:>10.0}  {}",
            r.op, r.calls, r.per_call, multiple, r.record_bytes, r.note
        );
    }
}

/// The contention row under callgrind: for each of `max_attempts` (0: every write by the
/// script), [`crate::contention::run`] with `writers` writers of 25 lines each on one ~1 KiB
/// task, and the instructions the server executed per line written (the run's connections
/// and its one save included: under 1 % of it).
///
/// # Errors
/// As [`run`]; when a line is lost.
pub async fn run_contention(
    writers: usize,
    max_attempts: &[usize],
) -> Result<Vec<(crate::contention::Contention, f64)>> {
    let server = Callgrind::start()?;
    let url = server.url();
    let mut rows = Vec::new();
    for &n in max_attempts {
        let mut outcome = None;
        let total = server
            .count(async {
                outcome = Some(crate::contention::run(&url, Guard::Watch, writers, 25, n).await?);
                Ok(())
            })
            .await?;
        let outcome = outcome.context("no outcome")?;
        let per_line = total as f64 / (outcome.writers * outcome.lines) as f64;
        rows.push((outcome, per_line));
    }
    Ok(rows)
}
