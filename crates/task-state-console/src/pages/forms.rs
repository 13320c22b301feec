//! The pages of forms: sign-in, the confirmation of a write (one task or a filter's tasks in
//! bulk), and what a bulk action did.

use maud::{html, Markup};
use task_state_core::TaskRecord;

use super::*;
use crate::auth::Session;
use crate::listing::{Cursor, Filter};
use crate::text::Shown;

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
    /// The action named in a path (`cancel`, `delete`).
    pub(crate) fn parse(name: &str) -> Option<Action> {
        [Action::Cancel, Action::Delete]
            .into_iter()
            .find(|a| a.as_str() == name)
    }

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

/// The filter in words, for a bulk action's pages.
fn describe(filter: &Filter) -> Markup {
    html! {
        ul class="filter" {
            @if let Some(prefix) = &filter.id_prefix { li { "id begins with " code { (Shown(prefix)) } } }
            @if let Some(service) = &filter.service { li { "service " code { (Shown(service)) } } }
            @if let Some(user) = &filter.user { li { "user " code { (Shown(user)) } } }
            @if let Some(status) = filter.status { li { "status " (self::status(status)) } }
        }
    }
}

/// Ids a bulk action's confirmation names, the others are counted.
const BULK_IDS_SHOWN: usize = 20;

/// The confirmation of `action` on the tasks `ids` of `filter`; `problem` says why it is
/// shown again.
pub(crate) fn confirm_bulk(
    ctx: &Ctx,
    session: &Session,
    filter: &Filter,
    action: Action,
    ids: &[String],
    problem: Option<&str>,
) -> Markup {
    let n = ids.len();
    let (title, question, button) = match action {
        Action::Cancel => (
            "Request cancellation of tasks",
            format!("Ask the workers to stop these {n} tasks (those of the filter still pending, dispatching or running)? Each becomes cancel_requested if it still is."),
            format!("Request cancellation of {n} tasks"),
        ),
        Action::Delete => (
            "Delete tasks",
            format!("Delete these {n} tasks, their metadata and their index entries? This cannot be undone."),
            format!("Delete {n} tasks"),
        ),
    };
    let back = list_url(filter, &Cursor::Start);
    let body = html! {
        @if let Some(problem) = problem { p class="error" role="alert" { (problem) } }
        p { "The tasks where:" }
        (describe(filter))
        @if n == 0 {
            p id="bulk-count" { "No task matches: there is nothing to do." }
            p { a href=(back) { "Back to the list" } }
        } @else {
            p id="bulk-count" { strong { (n) " tasks" } " match." }
            ul class="plain ids" {
                @for id in ids.iter().take(BULK_IDS_SHOWN) { li { a href=(task_url(id)) { (Shown(id)) } } }
                @if n > BULK_IDS_SHOWN { li { "and " (n - BULK_IDS_SHOWN) " more" } }
            }
            p { (question) }
            form method="post" action={ "/bulk/" (action.as_str()) } {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="count" value=(n);
                @if let Some(prefix) = &filter.id_prefix { input type="hidden" name="id" value=(prefix); }
                @if let Some(service) = &filter.service { input type="hidden" name="service" value=(service); }
                @if let Some(user) = &filter.user { input type="hidden" name="user" value=(user); }
                @if let Some(status) = filter.status { input type="hidden" name="status" value=(status.as_str()); }
                button type="submit" id="confirm" class=(if action == Action::Delete { "danger" } else { "" }) { (button) }
                " " a href=(back) { "Back" }
            }
        }
    };
    layout(title, ctx, None, body)
}

/// What a bulk action did.
#[derive(Debug, Default)]
pub(crate) struct BulkTally {
    pub(crate) done: usize,
    /// Deleted meanwhile.
    pub(crate) gone: usize,
    /// No longer cancellable.
    pub(crate) conflict: usize,
    pub(crate) failed: usize,
}

/// The outcome of a bulk action.
pub(crate) fn bulk_done(ctx: &Ctx, filter: &Filter, action: Action, tally: &BulkTally) -> Markup {
    let (title, verb) = match action {
        Action::Cancel => ("Cancellation requested", "cancellation requested"),
        Action::Delete => ("Deleted", "deleted"),
    };
    let body = html! {
        p role="status" id="bulk-done" { (tally.done) " tasks " (verb) "." }
        (describe(filter))
        @if tally.gone > 0 { p { (tally.gone) " were deleted meanwhile." } }
        @if tally.conflict > 0 { p { (tally.conflict) " had reached another status meanwhile and were left alone." } }
        @if tally.failed > 0 { p class="error" { (tally.failed) " failed; the console's log names them." } }
        p { a href=(list_url(filter, &Cursor::Start)) { "Back to the list" } }
    };
    layout(title, ctx, None, body)
}
