//! The task pages: a list with its filter, sort and bulk actions, one task with its log,
//! and a service's users.

use maud::{html, Markup};
use task_state_core::jiff::Timestamp;
use task_state_core::{TaskRecord, TaskStatus};

use super::*;
use crate::fields;
use crate::listing::{Column, Cursor, Filter, Page, Sort};
use crate::text::Shown;

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

/// The order a click on `column`'s heading asks for: the other way round when the list is
/// already sorted by it; otherwise ascending, but times newest first.
fn sort_by(current: Sort, column: Column) -> Sort {
    if current.column == column {
        return Sort {
            column,
            descending: !current.descending,
        };
    }
    Sort {
        column,
        descending: matches!(column, Column::Created | Column::Updated),
    }
}

/// A sortable heading of the task list: a link to the list in that order, marked when the
/// list is in it.
fn sort_heading(filter: &Filter, column: Column) -> Markup {
    let sorted = filter.sort.column == column;
    let order = if filter.sort.descending {
        "descending"
    } else {
        "ascending"
    };
    let next = Filter {
        sort: sort_by(filter.sort, column),
        ..filter.clone()
    };
    html! {
        th scope="col" aria-sort=[sorted.then_some(order)] {
            a href=(list_url(&next, &Cursor::Start)) class="sort" {
                (column.heading())
                @if sorted { " " span class="arrow" { @if filter.sort.descending { "▼" } @else { "▲" } } }
            }
        }
    }
}

/// The task list.
pub(crate) fn task_list(ctx: &Ctx, list: &TaskList<'_>) -> Markup {
    let TaskList {
        filter,
        page,
        services,
        ..
    } = *list;
    let body = html! {
        (filter_form(filter, services))
        (list_count(list))
        @if ctx.writes && filter.narrows() {
            p class="actions" {
                "The tasks of this filter: "
                a class="button" href=(bulk_url(filter, Action::Cancel)) { "Request cancellation…" } " "
                a class="button danger" href=(bulk_url(filter, Action::Delete)) { "Delete…" }
            }
        }
        div class="scroll" {
            table class="tasks" {
                thead { tr { @for column in Column::ALL { (sort_heading(filter, column)) } th scope="col" { "Jobs" } } }
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
                a href=(list_url(filter, previous)) rel="prev" {
                    @if *previous == Cursor::Start { "First page" } @else { "Previous page" }
                }
            }
            @if let Some(next) = &page.next {
                a href=(list_url(filter, next)) rel="next" { "Next page" }
            }
        }
    };
    let refresh = (!filter.scans()).then_some(AUTO_REFRESH);
    layout("Tasks", ctx, refresh, body)
}

/// Whether a task in `status` may be asked to stop.
pub(crate) fn cancellable(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Pending | TaskStatus::Dispatching | TaskStatus::Running
    )
}

/// How many log entries a task page shows when it opens (the newest ones).
pub(crate) const LOG_LINES_SHOWN: usize = 1_000;

/// One task.
pub(crate) fn task(ctx: &Ctx, r: &TaskRecord) -> Markup {
    let shown_from = r.logs.len().saturating_sub(LOG_LINES_SHOWN);
    let live = !r.status.is_terminal();
    let cancellable = cancellable(r.status);
    let body = html! {
        dl class="fields" {
            dt { "Status" } dd { span id="status" class={ "status status-" (r.status.as_str()) } { (r.status.as_str()) } }
            dt { "Service" } dd { a href=(list_url(&of_service(&r.service, None), &Cursor::Start)) { (Shown(&r.service)) } }
            dt { "User" } dd { a href=(list_url(&of_service(&r.service, Some(&r.user_id)), &Cursor::Start)) { (Shown(&r.user_id)) } }
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
                li { a href=(list_url(&of_service(service, Some(u)), &Cursor::Start)) { (Shown(u)) } }
            }
        }
    };
    layout(&format!("Users of {service}"), ctx, None, body)
}

/// The list's filter: id prefix, service, user and status, keeping the sort.
fn filter_form(filter: &Filter, services: &[String]) -> Markup {
    html! {
    form method="get" action="/tasks" class="filters" role="search" {
        label { "ID begins with " input name="id" type="search" value=(filter.id_prefix.as_deref().unwrap_or("")); }
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
        @if let Some(sort) = filter.sort.param() { input type="hidden" name="sort" value=(sort); }
        button type="submit" { "Filter" }
    }
    }
}

/// How many tasks the list holds, and what was read to know it.
fn list_count(list: &TaskList<'_>) -> Markup {
    let TaskList {
        filter,
        page,
        counted,
        skipped,
        ..
    } = *list;
    let shown = page.records.len() + page.unreadable.len();
    html! {
    p class="count" {
        @if skipped {
            "The count of " (fields::utc(counted.map_or_else(task_state_core::jiff::Timestamp::now, |c| c.at)))
            " found no " (filter.status.map(|s| s.as_str()).unwrap_or("")) " tasks here, so the index was not read; tasks that changed since are not shown. "
            a href={ (list_url(filter, &Cursor::Start)) "&scan=1" } { "Read the index now" }
        } @else if let Some(matched) = page.matched {
            @if shown == 0 { "No tasks." }
            @else { "Tasks " (page.first + 1) "–" (page.first + shown) " of " (matched) }
            " (every record of the " (page.ids_in_index) " in the index read to sort them)."
            @if let Some(c) = counted { " The count of " (fields::utc(c.at)) " found " (c.tasks) "." }
        } @else if filter.status.is_none() {
            @if shown == 0 { "No tasks." }
            @else { "Tasks " (page.first + 1) "–" (page.first + shown) " of " (page.ids_in_index) " in the index." }
        } @else {
            (page.records.len()) " " (filter.status.map(|s| s.as_str()).unwrap_or("")) " tasks on this page (from " (page.ids_in_index) " in the index)."
            @if let Some(c) = counted { " The count of " (fields::utc(c.at)) " found " (c.tasks) "." }
        }
    }
    }
}
