//! The overview: the counts by service and status, the page of services, the throughput
//! chart of the last hour and the janitor's figures.

use maud::{html, Markup};
use task_state_core::jiff::Timestamp;
use task_state_redis::{CheckReport, ExpiryStats, ReconcileStats};

use super::*;
use crate::check_job::CheckState;
use crate::counts::{Counts, Throughput, MINUTES};
use crate::fields;
use crate::listing::{Cursor, Filter};
use crate::text::Shown;
use crate::CountState;

/// Which services the overview's table shows: page `number` (from 1) of `size` services,
/// by name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServicePage {
    pub(crate) number: usize,
    pub(crate) size: usize,
}

/// The overview.
pub(crate) fn overview(
    ctx: &Ctx,
    counts: &CountState,
    services: ServicePage,
    janitor: Option<(ExpiryStats, ReconcileStats)>,
    check: &CheckState,
    checkable: bool,
) -> Markup {
    let body = html! {
        section aria-labelledby="counts" {
            h2 id="counts" { "Tasks by service and status" }
            @match &counts.counts {
                None => p { "Counting the tasks…" }
                Some(c) => (counts_table(c, services))
            }
            @if let Some(error) = &counts.error {
                p class="error" { "The last count failed: " (error) }
            }
        }
        @if let Some(c) = &counts.counts {
            section aria-labelledby="throughput" {
                h2 id="throughput" { "Throughput, the last hour" }
                (throughput(&c.throughput))
            }
            section aria-labelledby="recent" {
                h2 id="recent" { "Most recently updated" }
                div class="scroll" {
                    table {
                        thead { tr { th { "ID" } th { "Service" } th { "User" } th { "Status" } th { "Updated" } } }
                        tbody {
                            @for r in &c.recent {
                                tr {
                                    td { a href=(task_url(&r.task_id)) { (Shown(&r.task_id)) } }
                                    td { (Shown(&r.service)) } td { (Shown(&r.user_id)) } td { (status(r.status)) }
                                    td { (when(r.at, &r.updated_at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (janitor_section(janitor.as_ref()))
        (check_section(check, checkable))
    };
    layout("Overview", ctx, Some(AUTO_REFRESH), body)
}

/// The chart's size in SVG units: a slot of [`SLOT`] for each minute, two bars in it.
const CHART_HEIGHT: u64 = 100;

const SLOT: usize = 10;

const BAR: usize = 4;

/// Tasks created and finished a minute over the last hour of the count, as a bar chart in
/// SVG (drawn on the server: no script, no style attribute, so the CSP stays as it is), with
/// the totals written out and each minute's numbers in its bars' titles.
fn throughput(t: &Throughput) -> Markup {
    let created: u64 = t.created.iter().sum();
    let finished: u64 = t.finished.iter().sum();
    let top = t
        .created
        .iter()
        .chain(&t.finished)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |n: u64| n * CHART_HEIGHT / top;
    let width = SLOT * MINUTES;
    let start = t.until.as_second() - (MINUTES as i64) * 60;
    let minute_of = |m: usize| {
        Timestamp::from_second(start + (m as i64) * 60)
            .map(|at| at.strftime("%H:%M").to_string())
            .unwrap_or_default()
    };
    html! {
        p id="throughput-totals" {
            span class="key created" { "■" } " " (created) " created, "
            span class="key finished" { "■" } " " (finished) " finished (completed, failed or cancelled) in the hour before the count of " (fields::utc(t.until))
            ", by the records' times; tasks deleted or expired since are not in it. Most in a minute: " (top) "."
        }
        div class="scroll" {
            svg class="chart" role="img" aria-labelledby="throughput-totals" xmlns="http://www.w3.org/2000/svg"
                viewBox={ "0 0 " (width) " " (CHART_HEIGHT + 16) } width=(width) height=(CHART_HEIGHT + 16) {
                line class="axis" x1="0" y1=(CHART_HEIGHT) x2=(width) y2=(CHART_HEIGHT) {}
                @for m in 0..MINUTES {
                    @let (c, f) = (t.created[m], t.finished[m]);
                    @let x = m * SLOT;
                    g {
                        title { (minute_of(m)) " UTC: " (c) " created, " (f) " finished" }
                        rect class="created" x=(x + 1) y=(CHART_HEIGHT - height(c)) width=(BAR) height=(height(c)) {}
                        rect class="finished" x=(x + 1 + BAR) y=(CHART_HEIGHT - height(f)) width=(BAR) height=(height(f)) {}
                    }
                }
                text x="0" y=(CHART_HEIGHT + 13) { (minute_of(0)) }
                text x=(width / 2) y=(CHART_HEIGHT + 13) text-anchor="middle" { (minute_of(MINUTES / 2)) }
                text x=(width) y=(CHART_HEIGHT + 13) text-anchor="end" { (minute_of(MINUTES)) " UTC" }
            }
        }
    }
}

fn counts_table(c: &Counts, page: ServicePage) -> Markup {
    let pages = c.by_service.len().div_ceil(page.size);
    // Past the last page, the last page.
    let page = ServicePage {
        number: page.number.min(pages.max(1)),
        ..page
    };
    let first = (page.number - 1) * page.size;
    let shown = c.by_service.iter().skip(first).take(page.size);
    let overview_page = |n: usize| {
        if n == 1 {
            "/".to_owned()
        } else {
            format!("/?page={n}")
        }
    };
    html! {
        p { (c.total()) " tasks in " (c.by_service.len()) " services, counted " (fields::utc(c.at)) " in " (format!("{:.1}", c.took.as_secs_f64())) " s"
            @if c.unreadable > 0 { "; " (c.unreadable) " unreadable records" } "." }
        @if pages > 1 {
            p class="count" { "Services " (first + 1) "–" ((first + page.size).min(c.by_service.len())) " by name (page " (page.number) " of " (pages) ")." }
        }
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "Service" } (status_header()) th scope="col" { "total" } th scope="col" { "users" } } }
                tbody {
                    @for (service, statuses) in shown {
                        tr {
                            th scope="row" {
                                a href=(list_url(&of_service(service, None), &Cursor::Start)) { (Shown(service)) }
                            }
                            @for (s, n) in statuses.iter() {
                                td class="num" {
                                    @if n > 0 {
                                        a href=(list_url(&Filter { status: Some(s), ..of_service(service, None) }, &Cursor::Start)) { (n) }
                                    } @else { "0" }
                                }
                            }
                            td class="num" { (statuses.total()) }
                            td { a href=(users_url(service)) { "users" } }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav aria-label="pages of services" class="pages" {
                @if page.number > 1 { a href=(overview_page(page.number - 1)) rel="prev" { "Previous services" } }
                @if page.number < pages { a href=(overview_page(page.number + 1)) rel="next" { "Next services" } }
            }
        }
    }
}

pub(super) fn summary(report: &CheckReport) -> Markup {
    html! {
        @if report.is_consistent() { strong { "consistent" } } @else { strong class="error" { "inconsistent" } }
        " (" (report.records) " records, " (report.missing()) " missing and " (report.extra())
        " extra index entries, " (report.metadata_mismatch) " metadata mismatches, "
        (report.orphan_metadata) " orphan metadata, " (report.wrong_type.len()) " keys of the wrong type, "
        (report.unreadable) " unreadable, " (report.not_utf8) " keys or members not UTF-8)"
    }
}

/// The janitor's figures, when it runs in this process.
fn janitor_section(janitor: Option<&(ExpiryStats, ReconcileStats)>) -> Markup {
    html! {
    section aria-labelledby="janitor" {
        h2 id="janitor" { "Janitor" }
        @match janitor {
            None => p { "The janitor does not run in this process (start the console with --janitor, or see the janitor's own log)." }
            Some((s, r)) => dl {
                dt { "expired-key events" } dd { (s.messages) " (" (s.task_messages) " for tasks)" }
                dt { "cleanups" } dd { (s.cleanups) " (metadata missing: " (s.metadata_missing) ")" }
                dt { "failures" } dd { (s.failures) }
                dt { "reconnects, events lost" } dd { (s.reconnects) ", " (s.lagged) }
                dt { "last error" } dd { (s.last_error.as_deref().unwrap_or("none")) }
                dt { "reconciler sweeps" } dd { (r.runs) ", " (r.members_removed) " members removed" }
                dt { "last sweep" } dd { (r.last_run_at.map(fields::utc).unwrap_or_else(|| "none yet".to_owned())) }
                dt { "last sweep error" } dd { (r.last_error.as_deref().unwrap_or("none")) }
            }
        }
    }
    }
}

/// The last consistency check of this console, or a link to run one.
fn check_section(check: &CheckState, checkable: bool) -> Markup {
    html! {
    section aria-labelledby="check" {
        h2 id="check" { "Consistency check" }
        @if !checkable {
            p { "The consistency check needs the Redis backend." }
        } @else if check.running.is_some() {
            p { a href="/check" { "A check is running." } }
        } @else {
            @match &check.last {
                None => p { "Not run by this console yet. " a href="/check" { "Run it" } }
                Some(f) => p {
                    "Last run " (fields::utc(f.at)) ": "
                    @match &f.outcome {
                        Ok(report) => (summary(report)),
                        Err(e) => span class="error" { "failed: " (e) },
                    }
                    " " a href="/check" { "Details" }
                }
            }
        }
    }
    }
}
