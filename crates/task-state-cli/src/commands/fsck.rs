//! `fsck [--repair [--dry-run]] [--json]`: the consistency check, with a progress bar on a
//! terminal; `fsck --user U [--service S]`: the check of one user's index.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use task_state_core::layout;
use task_state_redis::{
    check, check_user, plan_user_repair, CheckOptions, CheckPhase, CheckProgress, CheckReport,
    RedisTaskRepository, UserCheckOptions, UserIndexReport, UserRepairPlan,
};

use crate::cli::FsckArgs;
use crate::failure::{Exit, Failure};
use crate::output::{escape_controls, Output};

/// Checks (and with `repair`, repairs, then checks again) and prints a summary table, or one
/// JSON object; with `dry_run`, checks and lists what the repair would change, changing
/// nothing. The exit status is the verdict of [`CheckReport::is_consistent`] (after the
/// repair, with `repair`), as the JSON's `consistent` is: inconsistencies that remain,
/// unreadable records and names that are not UTF-8 among them, give exit code 1; a check
/// that could not be done gives [`Exit::Unchecked`].
pub(crate) async fn run(
    repo: &RedisTaskRepository,
    args: FsckArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let dry_run = args.repair && args.dry_run;
    let repair = args.repair && !dry_run;
    if let Some(user) = args.user {
        let mode = Mode { repair, dry_run };
        return run_user(repo, user, args.service, mode, args.json, out).await;
    }
    let first = checked(repo, repair).await?;
    let remaining = if repair {
        checked(repo, false).await?
    } else {
        first.clone()
    };
    if args.json {
        let mut object = report_json(&first);
        if repair {
            object["after_repair"] = report_json(&remaining);
        }
        if dry_run {
            object["dry_run"] = json!(true);
        }
        out.line(&object.to_string())?;
    } else {
        print_report(&first, out)?;
        if dry_run {
            print_planned(&first, out)?;
        }
        if repair {
            out.line(&format!("repaired: {}", first.repaired))?;
            out.line(&format!(
                "after repair: {}",
                if remaining.is_consistent() {
                    "consistent"
                } else {
                    "still inconsistent"
                }
            ))?;
        }
    }
    if remaining.is_consistent() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Error,
            format!(
                "inconsistent: {} missing and {} extra index entries, {} metadata mismatches, {} orphan metadata hashes, {} keys of the wrong type, {} unreadable records, {} keys or members not UTF-8",
                remaining.missing(),
                remaining.extra(),
                remaining.metadata_mismatch,
                remaining.orphan_metadata,
                remaining.wrong_type.len(),
                remaining.unreadable,
                remaining.not_utf8
            ),
        ))
    }
}

/// The store-wide report as one JSON object.
fn report_json(report: &CheckReport) -> Value {
    let indexes: serde_json::Map<String, Value> = report
        .indexes
        .iter()
        .map(|(key, diff)| {
            (
                key.clone(),
                json!({"missing": diff.missing, "extra": diff.extra}),
            )
        })
        .collect();
    let wrong_type: serde_json::Map<String, Value> = report
        .wrong_type
        .iter()
        .map(|(key, kind)| {
            (
                key.clone(),
                json!({"expected": kind.expected, "found": kind.found}),
            )
        })
        .collect();
    let unreadable: Vec<Value> = report
        .unreadable_examples
        .iter()
        .map(|(key, reason)| json!({"key": key, "reason": reason}))
        .collect();
    json!({
        "consistent": report.is_consistent(),
        "records": report.records,
        "unreadable": report.unreadable,
        "unreadable_examples": unreadable,
        "not_utf8": report.not_utf8,
        "not_utf8_examples": report.not_utf8_examples,
        "missing": report.missing(),
        "extra": report.extra(),
        "indexes": indexes,
        "metadata_mismatch": report.metadata_mismatch,
        "orphan_metadata": report.orphan_metadata,
        "wrong_type": wrong_type,
        "repaired": report.repaired,
        "repairs": report.repairs,
        "repairs_not_listed": report.repairs_not_listed,
    })
}

/// What the repair would change (`--repair --dry-run`): one line each, then a line that says
/// nothing was changed.
fn print_planned(report: &CheckReport, out: &mut Output) -> Result<(), Failure> {
    if report.repairs.is_empty() {
        out.line("dry run: the repair would change nothing")?;
        return Ok(());
    }
    out.line("the repair would:")?;
    for repair in &report.repairs {
        out.text(&format!("  {repair}"))?;
    }
    if report.repairs_not_listed > 0 {
        out.line(&format!(
            "  and {} more repairs, not listed",
            report.repairs_not_listed
        ))?;
    }
    out.line("dry run: nothing was changed")?;
    Ok(())
}

/// `--repair` and `--dry-run` as they apply: at most one is true.
#[derive(Debug, Clone, Copy)]
struct Mode {
    repair: bool,
    dry_run: bool,
}

/// `fsck --user U [--service S] [--repair [--dry-run]] [--json]`; with repair, the exit code
/// follows a check after it.
async fn run_user(
    repo: &RedisTaskRepository,
    user: String,
    service: Option<String>,
    Mode { repair, dry_run }: Mode,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let options = |repair| UserCheckOptions {
        service: service.clone(),
        repair,
    };
    let found = check_user(repo, &user, options(repair)).await?;
    let remaining = if repair {
        check_user(repo, &user, options(false)).await?
    } else {
        found.clone()
    };
    let plan = if dry_run {
        Some(plan_user_repair(repo, &found).await?)
    } else {
        None
    };
    if json {
        let encode = |e: serde_json::Error| {
            Failure::new(Exit::Error, format!("cannot encode the report: {e}"))
        };
        let mut object = serde_json::to_value(&found).map_err(encode)?;
        if let Some(plan) = &plan {
            object["dry_run"] = json!(true);
            object["would_repair"] = serde_json::to_value(plan).map_err(encode)?;
        }
        out.line(&object.to_string())?;
    } else {
        print_user_report(&found, out)?;
        if let Some(plan) = &plan {
            print_user_plan(&found.user_id, plan, out)?;
        }
        if let Some(repaired) = found.repaired {
            out.line(&format!("repaired: {repaired}"))?;
            out.line(&format!(
                "after repair: {}",
                if remaining.is_consistent() {
                    "consistent"
                } else {
                    "still inconsistent"
                }
            ))?;
        }
    }
    if remaining.is_consistent() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Error,
            format!(
                "inconsistent: {} lacks {} and has {} extra of the services' ids",
                layout::user_index(&user),
                remaining.missing_in_user_index.len(),
                remaining.extra_in_user_index.len()
            ),
        ))
    }
}

fn print_user_plan(user: &str, plan: &UserRepairPlan, out: &mut Output) -> Result<(), Failure> {
    let key = layout::user_index(user);
    if plan.add.is_empty() && plan.remove.is_empty() {
        out.text(&format!(
            "dry run: the repair would change nothing in {key}"
        ))?;
        return Ok(());
    }
    out.line("the repair would:")?;
    if !plan.add.is_empty() {
        out.text(&format!("  add to {key}: {}", plan.add.join(" ")))?;
    }
    if !plan.remove.is_empty() {
        out.text(&format!("  remove from {key}: {}", plan.remove.join(" ")))?;
    }
    out.line("dry run: nothing was changed")?;
    Ok(())
}

fn print_user_report(report: &UserIndexReport, out: &mut Output) -> Result<(), Failure> {
    let mut table = out.table(&[]);
    let rows = [
        ("user", report.user_id.clone()),
        ("services", report.services.join(", ")),
        ("user index", report.user_index_count.to_string()),
        ("services' union", report.service_union_count.to_string()),
        (
            "missing in user index",
            report.missing_in_user_index.join(" "),
        ),
        ("extra in user index", report.extra_in_user_index.join(" ")),
    ];
    for (name, value) in rows {
        table.add_row(vec![name.to_owned(), escape_controls(&value).into_owned()]);
    }
    out.line(&table.to_string()).map_err(Failure::from)
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
            escape_controls(key).into_owned(),
            diff.missing.to_string(),
            diff.extra.to_string(),
        ]);
    }
    if !report.indexes.is_empty() {
        out.line(&table.to_string())?;
    }
    // Never repaired: such a key may be another application's, or hold data someone needs.
    let mut wrong = out.table(&["key of the wrong type", "expected", "found"]);
    for (key, kind) in &report.wrong_type {
        wrong.add_row(vec![
            escape_controls(key).into_owned(),
            kind.expected.to_owned(),
            escape_controls(&kind.found).into_owned(),
        ]);
    }
    if !report.wrong_type.is_empty() {
        out.line(&wrong.to_string())?;
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
    summary.add_row(vec![
        "keys of the wrong type".to_owned(),
        report.wrong_type.len().to_string(),
    ]);
    summary.add_row(vec![
        "keys or members not UTF-8".to_owned(),
        report.not_utf8.to_string(),
    ]);
    out.line(&summary.to_string())?;
    for (key, reason) in &report.unreadable_examples {
        out.text(&format!("unreadable {key}: {reason}"))?;
    }
    for name in &report.not_utf8_examples {
        match &name.member {
            Some(member) => out.line(&format!("not UTF-8: member {member} of {}", name.key))?,
            None => out.line(&format!("not UTF-8: key {}", name.key))?,
        }
    }
    Ok(())
}
