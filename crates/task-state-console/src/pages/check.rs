//! The consistency check's page: start a check, follow its phases, read its report.

use maud::{html, Markup};
use task_state_redis::CheckPhase;

use super::*;
use crate::check_job::{CheckState, Running};
use crate::fields;
use crate::text::Shown;

/// The consistency check page.
pub(crate) fn check(ctx: &Ctx, state: &CheckState, checkable: bool) -> Markup {
    let running = state.running.as_ref();
    let body = html! {
        @if !checkable {
            p { "The consistency check needs the Redis backend." }
        } @else {
            p { "Compares every record with the indexes it belongs to and its metadata, every index with the records, and every metadata hash with its record, as " code { "task-state fsck" } " does. It only reads; repairs are made with " code { "task-state fsck --repair" } "." }
            @if let Some(progress) = running {
                p id="check-progress" {
                    @match progress {
                        Running::Starting => "Starting…",
                        Running::At(p) => {
                            (phase(p.phase)) ": " (p.done)
                            @if let Some(total) = p.estimated_total { " of about " (total) }
                            " "
                            @if let Some(total) = p.estimated_total.filter(|t| *t > 0) {
                                progress value=(p.done.min(total)) max=(total) { (p.done * 100 / total) "%" }
                            } @else { progress {} }
                        }
                    }
                }
            } @else {
                form method="post" action="/check" { button type="submit" { "Run the check" } }
            }
            @if let Some(f) = &state.last {
                h2 { "Last result" }
                p { "Ended " (fields::utc(f.at)) " after " (format!("{:.1}", f.took.as_secs_f64())) " s: "
                    @match &f.outcome { Ok(r) => (summary(r)), Err(e) => span class="error" { "failed: " (e) } } }
                @if let Ok(report) = &f.outcome {
                    @if !report.indexes.is_empty() {
                        div class="scroll" { table {
                            thead { tr { th { "Index" } th { "Missing" } th { "Extra" } } }
                            tbody { @for (key, diff) in &report.indexes { tr { td { code { (Shown(key)) } } td class="num" { (diff.missing) } td class="num" { (diff.extra) } } } }
                        } }
                    }
                    @if !report.wrong_type.is_empty() {
                        h3 { "Keys of the wrong type (never repaired)" }
                        div class="scroll" { table {
                            thead { tr { th { "Key" } th { "Expected" } th { "Found" } } }
                            tbody { @for (key, w) in &report.wrong_type { tr { td { code { (Shown(key)) } } td { (w.expected) } td { (w.found) } } } }
                        } }
                    }
                    @if !report.unreadable_examples.is_empty() {
                        h3 { "Unreadable records" }
                        ul { @for (key, reason) in &report.unreadable_examples { li { code { (Shown(key)) } ": " (Shown(reason)) } } }
                    }
                }
            }
        }
    };
    layout("Consistency check", ctx, running.map(|_| 1), body)
}

fn phase(phase: CheckPhase) -> &'static str {
    match phase {
        CheckPhase::Records => "records",
        CheckPhase::Indexes => "indexes",
        CheckPhase::Metadata => "metadata",
    }
}
