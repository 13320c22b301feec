//! The contention row of issue 21: `writers` clients append `lines` log lines each to one
//! task at the same time with a prototype of [`write_path`](crate::write_path), each write
//! falling back to today's script (`append_logs`, which the server serialises) after
//! `max_attempts` raced attempts. It reports how many attempts the writes took and checks
//! that every line is in the record once, each writer's in the order it wrote them.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};
use task_state_core::TaskRepository;

use crate::fixtures;
use crate::suite::connect;
use crate::write_path::{Attempt, Edit, Editor, Guard};

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
    let repo = connect(url, writers.div_ceil(4)).await?;
    crate::admin::flushdb(repo.writer()).await?;
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
    let mut fell_back = 0;
    for task in tasks {
        for made in task.await?? {
            *attempts.entry(made).or_insert(0) += 1;
            if made > max_attempts {
                fell_back += 1;
            }
        }
    }
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
    repo.close().await;
    Ok(Contention {
        writers,
        lines,
        kept,
        attempts,
        fell_back,
        max_attempts,
    })
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
