//! The pages, as maud templates: every value from the store goes through maud's escaping,
//! and the only script is `/static/console.js`.

use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use task_state_core::jiff::Timestamp;
use task_state_core::{TaskRecord, TaskStatus};
use task_state_redis::{CheckPhase, CheckReport, ExpiryStats, ReconcileStats};

use crate::auth::Session;
use crate::check_job::{CheckState, Running};
use crate::counts::Counts;
use crate::fields;
use crate::listing::{Filter, Page};
use crate::text::{self, Shown};
use crate::CountState;

/// What every page needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Whether writes are allowed at all.
    pub(crate) writes: bool,
    /// The signed-in operator, if any.
    pub(crate) session: Option<Session>,
}

/// Everything but the characters that never need encoding in a path segment or a query
/// value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// What marks a name written in a path as a segment of dots only: no task id, service or
/// user id contains `:`, so the mark is never part of a name.
pub(crate) const DOTS_MARK: char = ':';

/// `name` as one path segment. A name of dots only (`.`, `..`) would be a dot segment, which
/// browsers resolve away (`/tasks/..` is `/`), and so would its percent-encoded form
/// (`%2E%2E` is a dot segment to them too); it is written after [`DOTS_MARK`] instead
/// (`%3A..`), which [`name_of_segment`] takes off again.
pub(crate) fn segment(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b == b'.') {
        encode(&format!("{DOTS_MARK}{name}"))
    } else {
        encode(name)
    }
}

/// The name a decoded path segment made by [`segment`] stands for.
pub(crate) fn name_of_segment(decoded: String) -> String {
    match decoded.strip_prefix(DOTS_MARK) {
        Some(dots) if !dots.is_empty() && dots.bytes().all(|b| b == b'.') => dots.to_owned(),
        _ => decoded,
    }
}

pub(crate) fn task_url(task_id: &str) -> String {
    format!("/tasks/{}", segment(task_id))
}

fn users_url(service: &str) -> String {
    format!("/services/{}/users", segment(service))
}

/// The task list with `filter`'s fields and `after` as the cursor.
fn list_url(filter: &Filter, after: Option<&str>) -> String {
    let mut query = Vec::new();
    if let Some(service) = &filter.service {
        query.push(format!("service={}", encode(service)));
    }
    if let Some(user) = &filter.user {
        query.push(format!("user={}", encode(user)));
    }
    if let Some(status) = filter.status {
        query.push(format!("status={status}"));
    }
    if let Some(after) = after {
        query.push(format!("after={}", encode(after)));
    }
    if query.is_empty() {
        "/tasks".to_owned()
    } else {
        format!("/tasks?{}", query.join("&"))
    }
}

/// Seconds between two reloads of the overview and of the task list (without a status
/// filter, whose page may read the whole index).
pub(crate) const AUTO_REFRESH: u32 = 30;

/// A moment shown as `text`, with how long ago it was.
fn when(at: Timestamp, text: impl maud::Render) -> Markup {
    html! {
        time datetime=(at.to_string()) { (text) }
        " " span class="ago" { "(" (fields::ago(at, Timestamp::now())) ")" }
    }
}

/// A log message; past [`fields::LONG_LINE`] characters the rest is behind "show more"
/// (the live log's script does the same).
fn log_message(message: &str) -> Markup {
    match fields::split_long(message) {
        None => html! { (Shown(message)) },
        Some((head, rest)) => html! {
            (Shown(head))
            details class="more" {
                summary { "show more (" (rest.chars().count()) " more characters)" }
                (Shown(rest))
            }
        },
    }
}

fn status(status: TaskStatus) -> Markup {
    html! { span class={ "status status-" (status.as_str()) } { (status.as_str()) } }
}

/// The frame of every page; `refresh` reloads it every so many seconds (the running check).
pub(crate) fn layout(title: &str, ctx: &Ctx, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (text::visible(title)) " · task-state console" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    nav aria-label="main" {
                        a href="/" { "Overview" }
                        a href="/tasks" { "Tasks" }
                        a href="/check" { "Consistency check" }
                        a href="/metrics" { "Metrics" }
                    }
                }
                main { h1 { (text::visible(title)) } (body) }
                footer {
                    @if let Some(seconds) = refresh {
                        span class="refresh" { "This page reloads every " (seconds) " s. " }
                    }
                    @if !ctx.writes {
                        "Read-only: writes are off."
                    } @else if let Some(session) = &ctx.session {
                        "Signed in as " strong { (session.operator) } ". "
                        form method="post" action="/logout" class="inline" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    } @else {
                        "Writes are on for signed-in operators. " a href="/login" { "Sign in" }
                    }
                }
            }
        }
    }
}

fn status_header() -> Markup {
    html! { @for s in TaskStatus::ALL { th scope="col" { (s.as_str()) } } }
}

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
        section aria-labelledby="janitor" {
            h2 id="janitor" { "Janitor" }
            @match &janitor {
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
    };
    layout("Overview", ctx, Some(AUTO_REFRESH), body)
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
                                a href=(list_url(&Filter { service: Some(service.clone()), ..Filter::default() }, None)) { (Shown(service)) }
                            }
                            @for (s, n) in statuses.iter() {
                                td class="num" {
                                    @if n > 0 {
                                        a href=(list_url(&Filter { service: Some(service.clone()), status: Some(s), ..Filter::default() }, None)) { (n) }
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

fn summary(report: &CheckReport) -> Markup {
    html! {
        @if report.is_consistent() { strong { "consistent" } } @else { strong class="error" { "inconsistent" } }
        " (" (report.records) " records, " (report.missing()) " missing and " (report.extra())
        " extra index entries, " (report.metadata_mismatch) " metadata mismatches, "
        (report.orphan_metadata) " orphan metadata, " (report.wrong_type.len()) " keys of the wrong type, "
        (report.unreadable) " unreadable, " (report.not_utf8) " keys or members not UTF-8)"
    }
}

/// What the last count says of a status filter's tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    /// The tasks it found with that status (in that service, if one is chosen).
    pub(crate) tasks: u64,
    pub(crate) at: task_state_core::jiff::Timestamp,
}

/// What the task list page shows.
#[derive(Debug)]
pub(crate) struct TaskList<'a> {
    pub(crate) filter: &'a Filter,
    pub(crate) page: &'a Page,
    /// The services the service field suggests.
    pub(crate) services: &'a [String],
    pub(crate) counted: Option<Counted>,
    /// Whether the scan was left out because the last count found no such task.
    pub(crate) skipped: bool,
}

/// The task list.
pub(crate) fn task_list(ctx: &Ctx, list: &TaskList<'_>) -> Markup {
    let TaskList {
        filter,
        page,
        services,
        counted,
        skipped,
    } = *list;
    let body = html! {
        form method="get" action="/tasks" class="filters" {
            label { "Service " input name="service" list="services" value=(filter.service.as_deref().unwrap_or("")); }
            datalist id="services" { @for s in services { option value=(s) {} } }
            label { "User " input name="user" value=(filter.user.as_deref().unwrap_or("")); }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in TaskStatus::ALL {
                        option value=(s.as_str()) selected[filter.status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        p class="count" {
            @if filter.status.is_none() {
                @if page.records.is_empty() && page.unreadable.is_empty() { "No tasks." }
                @else { "Tasks " (page.first + 1) "–" (page.first + page.records.len() + page.unreadable.len()) " of " (page.ids_in_index) " in the index." }
            } @else if skipped {
                "The count of " (fields::utc(counted.map_or_else(task_state_core::jiff::Timestamp::now, |c| c.at)))
                " found no " (filter.status.map(|s| s.as_str()).unwrap_or("")) " tasks here, so the index was not read; tasks that changed since are not shown. "
                a href={ (list_url(filter, None)) "&scan=1" } { "Read the index now" }
            } @else {
                (page.records.len()) " " (filter.status.map(|s| s.as_str()).unwrap_or("")) " tasks on this page (from " (page.ids_in_index) " in the index)."
                @if let Some(c) = counted { " The count of " (fields::utc(c.at)) " found " (c.tasks) "." }
            }
        }
        div class="scroll" {
            table class="tasks" {
                thead { tr { th { "ID" } th { "Service" } th { "User" } th { "Status" } th { "Priority" } th { "Created" } th { "Updated" } th { "Jobs" } } }
                tbody {
                    @for r in &page.records {
                        tr {
                            td { a href=(task_url(&r.task_id)) { (Shown(&r.task_id)) } }
                            td { (Shown(&r.service)) } td { (Shown(&r.user_id)) } td { (status(r.status)) }
                            td { (r.priority.as_str()) }
                            td { (when(r.created_at.timestamp(), fields::short_time(&r.created_at))) }
                            td { (when(r.updated_at.timestamp(), fields::short_time(&r.updated_at))) }
                            td { (Shown(&r.jobs.join(" "))) }
                        }
                    }
                    @for u in &page.unreadable {
                        tr class="unreadable" { td { (Shown(&u.task_id)) } td colspan="7" { "unreadable: " (Shown(&u.error.to_string())) } }
                    }
                }
            }
        }
        nav aria-label="pages" class="pages" {
            @if let Some(previous) = &page.previous {
                a href=(list_url(filter, previous.as_deref())) rel="prev" {
                    @if previous.is_none() { "First page" } @else { "Previous page" }
                }
            }
            @if let Some(next) = &page.next {
                a href=(list_url(filter, Some(next))) rel="next" { "Next page" }
            }
        }
    };
    let refresh = filter.status.is_none().then_some(AUTO_REFRESH);
    layout("Tasks", ctx, refresh, body)
}

/// How many log entries a task page shows when it opens (the newest ones).
pub(crate) const LOG_LINES_SHOWN: usize = 1_000;

/// One task.
pub(crate) fn task(ctx: &Ctx, r: &TaskRecord) -> Markup {
    let shown_from = r.logs.len().saturating_sub(LOG_LINES_SHOWN);
    let live = !r.status.is_terminal();
    let cancellable = matches!(
        r.status,
        TaskStatus::Pending | TaskStatus::Dispatching | TaskStatus::Running
    );
    let body = html! {
        dl class="fields" {
            dt { "Status" } dd { span id="status" class={ "status status-" (r.status.as_str()) } { (r.status.as_str()) } }
            dt { "Service" } dd { a href=(list_url(&Filter { service: Some(r.service.clone()), ..Filter::default() }, None)) { (Shown(&r.service)) } }
            dt { "User" } dd { a href=(list_url(&Filter { service: Some(r.service.clone()), user: Some(r.user_id.clone()), ..Filter::default() }, None)) { (Shown(&r.user_id)) } }
            dt { "Priority" } dd { (r.priority.as_str()) }
            dt { "Created" } dd { (when(r.created_at.timestamp(), r.created_at.to_string())) }
            dt { "Updated" } dd { (when(r.updated_at.timestamp(), r.updated_at.to_string())) }
            dt { "Duration" } dd id="duration" { (fields::duration(r, Timestamp::now())) }
            dt { "Jobs (" (r.jobs_field()) ")" } dd {
                @if r.jobs.is_empty() { "none" }
                @else { ul class="plain" { @for j in &r.jobs { li { code { (Shown(j)) } } } } }
            }
        }
        h2 { "Parameters" }
        pre class="json" { (Shown(&fields::parameters(r))) }
        @if let Some(extra) = fields::extra(r) {
            h2 { "Other fields" }
            pre class="json" { (Shown(&extra)) }
        }
        h2 { "Result" }
        dl class="fields" {
            dt { "Pod status" } dd { @match &r.result.pod_status { Some(s) => pre { (Shown(s)) }, None => "none" } }
            dt { "Launcher output" } dd { @match &r.result.launcher_output { Some(s) => pre { (Shown(s)) }, None => "none" } }
        }
        @if let Some(extra) = fields::result_extra(r) {
            h3 { "Other members of the result" }
            pre class="json" id="result-extra" { (Shown(&extra)) }
        }
        @if ctx.writes {
            h2 { "Actions" }
            p class="actions" {
                @if cancellable { a class="button" href={ (task_url(&r.task_id)) "/cancel" } { "Request cancellation" } " " }
                a class="button danger" href={ (task_url(&r.task_id)) "/delete" } { "Delete" }
            }
        }
        h2 { "Log" }
        p class="live" {
            span id="live-state" { @if live { "following" } @else { "final status: not followed" } }
            " "
            @if live { button type="button" id="pause" { "Pause" } }
        }
        @if shown_from > 0 { p { "The first " (shown_from) " entries are not shown." } }
        div class="scroll" {
            table id="log" class="log" data-events={ (task_url(&r.task_id)) "/events" }
                data-count=(r.logs.len()) data-live=(if live { "true" } else { "false" }) {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Message" } } }
                tbody {
                    @for raw in &r.logs[shown_from..] {
                        @let (at, message) = fields::log_line(raw);
                        tr { td class="time" { (at) } td { (log_message(&message)) } }
                    }
                }
            }
        }
    };
    layout(&format!("Task {}", r.task_id), ctx, None, body)
}

/// The users of a service.
pub(crate) fn users(ctx: &Ctx, service: &str, users: &[String]) -> Markup {
    let body = html! {
        p { (users.len()) " users have tasks in " strong { (Shown(service)) } "." }
        ul {
            @for u in users {
                li { a href=(list_url(&Filter { service: Some(service.to_owned()), user: Some(u.clone()), ..Filter::default() }, None)) { (Shown(u)) } }
            }
        }
    };
    layout(&format!("Users of {service}"), ctx, None, body)
}

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

/// The sign-in form; `next` is where it leads after signing in.
pub(crate) fn login(ctx: &Ctx, problem: Option<&str>, next: Option<&str>) -> Markup {
    let body = html! {
        @if !ctx.writes {
            p { "Writes are off: start the console with " code { "--allow-writes" } " to sign in." }
        } @else {
            @if let Some(problem) = problem { p class="error" role="alert" { (problem) } }
            form method="post" action="/login" {
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                label { "Token (" code { "name:secret" } ", as in TASK_STATE_CONSOLE_TOKEN) "
                    input type="password" name="token" autocomplete="off" required; }
                button type="submit" { "Sign in" }
            }
        }
    };
    layout("Sign in", ctx, None, body)
}

/// What a write action is, for its confirmation page and its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Cancel,
    Delete,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }
}

/// The confirmation of a write.
pub(crate) fn confirm(ctx: &Ctx, session: &Session, r: &TaskRecord, action: Action) -> Markup {
    let (title, question, button) = match action {
        Action::Cancel => (
            "Request cancellation",
            "Ask the worker to stop this task? Its status becomes cancel_requested if it is still pending, dispatching or running.",
            "Request cancellation",
        ),
        Action::Delete => (
            "Delete",
            "Delete this task, its metadata and its index entries? This cannot be undone.",
            "Delete the task",
        ),
    };
    let body = html! {
        p { "Task " a href=(task_url(&r.task_id)) { strong { (Shown(&r.task_id)) } } " of " (Shown(&r.service)) "/" (Shown(&r.user_id)) ", now " (status(r.status)) "." }
        p { (question) }
        form method="post" action={ (task_url(&r.task_id)) "/" (action.as_str()) } {
            input type="hidden" name="csrf" value=(session.csrf);
            button type="submit" id="confirm" class=(if action == Action::Delete { "danger" } else { "" }) { (button) }
            " " a href=(task_url(&r.task_id)) { "Back" }
        }
    };
    layout(title, ctx, None, body)
}

/// An error or a refusal.
pub(crate) fn problem(ctx: &Ctx, title: &str, message: &str) -> Markup {
    layout(
        title,
        ctx,
        None,
        html! { p class="error" role="alert" { (Shown(message)) } p { a href="/" { "Overview" } } },
    )
}

/// A plain message after a write.
pub(crate) fn done(ctx: &Ctx, title: &str, message: &str, link: (&str, &str)) -> Markup {
    layout(
        title,
        ctx,
        None,
        html! { p role="status" { (Shown(message)) } p { a href=(link.0) { (link.1) } } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any name a record may hold (no `:`, no control character) comes back from its
        /// link's path as a browser resolves it, dots-only names included.
        #[test]
        fn a_name_survives_its_link(name in "[.]{1,4}|[^:\\p{Cc}]{1,12}") {
            let link = task_url(&name);
            let base = url::Url::parse("http://console.invalid/").unwrap();
            let resolved = base.join(&link).unwrap();
            proptest::prop_assert_eq!(resolved.path(), link.as_str());
            let raw = link.strip_prefix("/tasks/").unwrap();
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().unwrap();
            proptest::prop_assert_eq!(name_of_segment(decoded.into_owned()), name);
        }
    }
}
