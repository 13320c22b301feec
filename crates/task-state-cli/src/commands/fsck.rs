//! `fsck [--repair]`: the consistency check, with a progress bar on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use task_state_redis::{
    check, CheckOptions, CheckPhase, CheckProgress, CheckReport, RedisTaskRepository,
};

use crate::failure::{Exit, Failure};
use crate::output::Output;

/// Checks (and with `repair`, repairs, then checks again) and prints a summary table.
/// Inconsistencies that remain, unreadable records among them, give exit code 1; a check
/// that could not be done gives [`Exit::Unchecked`].
pub(crate) async fn run(
    repo: &RedisTaskRepository,
    repair: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let first = checked(repo, repair).await?;
    print_report(&first, out)?;
    let remaining = if repair {
        out.line(&format!("repaired: {}", first.repaired))?;
        let again = checked(repo, false).await?;
        out.line(&format!(
            "after repair: {}",
            if again.is_consistent() {
                "consistent"
            } else {
                "still inconsistent"
            }
        ))?;
        again
    } else {
        first
    };
    if remaining.is_consistent() && remaining.unreadable == 0 {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Error,
            format!(
                "inconsistent: {} missing and {} extra index entries, {} metadata mismatches, {} orphan metadata hashes, {} unreadable records",
                remaining.missing(),
                remaining.extra(),
                remaining.metadata_mismatch,
                remaining.orphan_metadata,
                remaining.unreadable
            ),
        ))
    }
}

async fn checked(repo: &RedisTaskRepository, repair: bool) -> Result<CheckReport, Failure> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:8} [{bar:30}] {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let report = check(repo, CheckOptions { repair }, |p: &CheckProgress| {
        if let Some(bar) = &bar {
            let name = match p.phase {
                CheckPhase::Records => "records",
                CheckPhase::Indexes => "indexes",
                CheckPhase::Metadata => "metadata",
            };
            bar.set_message(name);
            bar.set_length(p.estimated_total.unwrap_or(p.done).max(p.done));
            bar.set_position(p.done);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report.map_err(|e| Failure::from(e).with_exit(Exit::Unchecked))
}

fn print_report(report: &CheckReport, out: &mut Output) -> Result<(), Failure> {
    let mut table = out.table(&["index", "missing", "extra"]);
    for (key, diff) in &report.indexes {
        table.add_row(vec![
            key.clone(),
            diff.missing.to_string(),
            diff.extra.to_string(),
        ]);
    }
    if !report.indexes.is_empty() {
        out.line(&table.to_string())?;
    }
    let mut summary = out.table(&[]);
    summary.add_row(vec!["records".to_owned(), report.records.to_string()]);
    summary.add_row(vec![
        "unreadable records".to_owned(),
        report.unreadable.to_string(),
    ]);
    summary.add_row(vec![
        "missing index entries".to_owned(),
        report.missing().to_string(),
    ]);
    summary.add_row(vec![
        "extra index entries".to_owned(),
        report.extra().to_string(),
    ]);
    summary.add_row(vec![
        "metadata mismatches".to_owned(),
        report.metadata_mismatch.to_string(),
    ]);
    summary.add_row(vec![
        "orphan metadata".to_owned(),
        report.orphan_metadata.to_string(),
    ]);
    out.line(&summary.to_string())?;
    for (key, reason) in &report.unreadable_examples {
        out.line(&format!("unreadable {key}: {reason}"))?;
    }
    Ok(())
}
