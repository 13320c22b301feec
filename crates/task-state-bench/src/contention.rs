//! The contention row of issue 21: `writers` clients append `lines` log lines each to one
//! task at the same time with a prototype of [`write_path`](crate::write_path), each write
//! falling back to today's script (`append_logs`, which the server serialises) after
//! `max_attempts` raced attempts. It reports how many attempts the writes took and checks
//! that every line is in the record once, each writer's in the order it wrote them.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};
use task_state_core::TaskRepository;

use crate::fixtures;
use crate::suite::connect_with;
use crate::write_path::{Attempt, Edit, Editor, Guard};
use task_state_redis::WritePath;

/// What the contention run saw.
#[derive(Debug, Clone)]
pub struct Contention {
    /// Writers.
    pub writers: usize,
    /// Lines each writer appended.
    pub lines: usize,
    /// Lines found in the record afterwards (of `writers * lines`), each once and in order.
    pub kept: usize,
    /// Writes by the optimistic attempts they made (`max_attempts` + 1 counts those that
    /// went to the script after `max_attempts` raced).
    pub attempts: BTreeMap<usize, usize>,
    /// Writes that went to the script.
    pub fell_back: usize,
    /// Optimistic attempts before the script.
    pub max_attempts: usize,
}

/// The message of writer `w`'s line `k`.
fn message(w: usize, k: usize) -> String {
    format!("writer {w:02} line {k:03}")
}

/// Runs the contention row on the server at `url` (emptied first: it must be private).
///
/// # Errors
/// When a write fails with an error, or a line is lost, repeated or out of order.
pub async fn run(
    url: &str,
    guard: Guard,
    writers: usize,
    lines: usize,
    max_attempts: usize,
) -> Result<Contention> {
    // The fallback is the script itself, whatever the repository's default.
    let repo = connect_with(url, writers.div_ceil(4), WritePath::Script).await?;
    crate::admin::flushdb(repo.raw_writer()).await?;
    let id = "contended";
    repo.save(fixtures::record_with_logs(id, 0, 0)).await?;
    let ttl = repo.settings().ttl_seconds();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let repo = repo.clone();
        let editor = Editor::connect(url, ttl, fixtures::zone().clone()).await?;
        tasks.push(tokio::spawn(async move {
            let mut counts = Vec::with_capacity(lines);
            for k in 0..lines {
                let edit = Edit::Append(vec![message(w, k)]);
                let mut made = 0;
                loop {
                    if made == max_attempts {
                        ensure!(repo.append_logs(id, &[message(w, k)]).await?, "no task");
                        made += 1;
                        break;
                    }
                    made += 1;
                    match editor.attempt(id, &edit, guard).await? {
                        Attempt::Applied => break,
                        Attempt::Raced => continue,
                        other => anyhow::bail!("append of writer {w}: {other:?}"),
                    }
                }
                counts.push(made);
            }
            editor.close().await;
            Ok::<_, anyhow::Error>(counts)
        }));
    }
    let mut attempts = BTreeMap::new();
    for task in tasks {
        for made in task.await?? {
            *attempts.entry(made).or_insert(0) += 1;
        }
    }
    finish(repo, id, (writers, lines), attempts, max_attempts).await
}

/// The contention row of the repository as built (issue 21): `writers` writers append
/// `lines` lines each to one task with `append_log` on write path `path`. A write makes at
/// most one optimistic attempt, then runs the script: the writes that went to the script
/// are the script calls the server counted (`INFO commandstats`), the rest applied at the
/// first attempt.
///
/// # Errors
/// As [`run`].
pub async fn run_repository(
    url: &str,
    path: WritePath,
    writers: usize,
    lines: usize,
) -> Result<Contention> {
    let repo = connect_with(url, writers.div_ceil(4), path).await?;
    crate::admin::flushdb(repo.raw_writer()).await?;
    let id = "contended";
    repo.save(fixtures::record_with_logs(id, 0, 0)).await?;
    let scripts_before = script_calls(&repo).await?;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..lines {
                ensure!(
                    repo.append_log(id, &message(w, k)).await?.is_some(),
                    "no task"
                );
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let fell_back = usize::try_from(script_calls(&repo).await? - scripts_before)?;
    let total = writers * lines;
    let optimistic = if path == WritePath::Script { 0 } else { 1 };
    let mut attempts = BTreeMap::new();
    if optimistic > 0 {
        attempts.insert(1, total.saturating_sub(fell_back));
    }
    attempts.insert(optimistic + 1, fell_back);
    finish(repo, id, (writers, lines), attempts, optimistic).await
}

/// The row of a run whose writes took `attempts` (writes by attempts made, more than
/// `max_attempts` counting those that went to the script), after checking task `id`'s lines;
/// closes `repo`.
async fn finish(
    repo: task_state_redis::RedisTaskRepository,
    id: &str,
    (writers, lines): (usize, usize),
    attempts: BTreeMap<usize, usize>,
    max_attempts: usize,
) -> Result<Contention> {
    let kept = kept_in_order(&repo, id, writers).await?;
    repo.close().await;
    let fell_back = attempts
        .iter()
        .filter(|(made, _)| **made > max_attempts)
        .map(|(_, writes)| writes)
        .sum();
    Ok(Contention {
        writers,
        lines,
        kept,
        attempts,
        fell_back,
        max_attempts,
    })
}

/// Calls of `FCALL` and `EVALSHA` the writer's server counted.
async fn script_calls(repo: &task_state_redis::RedisTaskRepository) -> Result<u64> {
    let info = crate::admin::command(repo.raw_writer(), "INFO", &["commandstats"]).await?;
    let info = crate::admin::text(&info).context("no INFO")?;
    let calls = |name: &str| -> u64 {
        let prefix = format!("cmdstat_{name}:calls=");
        info.lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(calls("fcall") + calls("evalsha"))
}

/// The lines of the contention run found in task `id`'s record, after checking that each
/// writer's are there once and in order.
async fn kept_in_order(
    repo: &task_state_redis::RedisTaskRepository,
    id: &str,
    writers: usize,
) -> Result<usize> {
    let record = repo.get(id).await?.context("the task is gone")?;
    let mut next = vec![0usize; writers];
    let mut kept = 0;
    for entry in &record.logs {
        let Some(at) = entry.find("writer ") else {
            continue;
        };
        let text = &entry[at..];
        let w: usize = text[7..9].parse()?;
        ensure!(
            text == message(w, next[w]),
            "writer {w}: expected line {} next, found {text:?}",
            next[w]
        );
        next[w] += 1;
        kept += 1;
    }
    Ok(kept)
}

/// Prints the row.
pub fn print(c: &Contention) {
    let spread: Vec<String> = c
        .attempts
        .iter()
        .map(|(n, writes)| {
            if *n > c.max_attempts {
                format!("script after {}: {writes}", c.max_attempts)
            } else {
                format!("{n}: {writes}")
            }
        })
        .collect();
    println!(
        "contention: {} writers x {} lines on one task: {}/{} lines kept, in order per writer; \
         writes by attempts: {}; {} went to the script",
        c.writers,
        c.lines,
        c.kept,
        c.writers * c.lines,
        spread.join(", "),
        c.fell_back
    );
}
