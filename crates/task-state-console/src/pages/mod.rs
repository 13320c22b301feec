//! The pages, as maud templates: every value from the store goes through maud's escaping,
//! and the only script is `/static/console.js`.
//!
//! [`layout`] and the small parts every page shares live here; each page lives with its
//! kind: [`overview`](mod@overview), [`tasks`] (lists, a task, a service's users),
//! [`check`](mod@check), [`forms`]
//! (sign-in and confirmations), and [`urls`] makes the links between them.

mod check;
mod forms;
mod overview;
mod tasks;
mod urls;

pub(crate) use check::check;
pub(crate) use forms::*;
pub(crate) use overview::*;
pub(crate) use tasks::*;
pub(crate) use urls::*;

use maud::{html, Markup, DOCTYPE};
use task_state_core::jiff::Timestamp;
use task_state_core::TaskStatus;

use crate::auth::Session;
use crate::fields;
use crate::text::{self, Shown};

/// What every page needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Whether writes are allowed at all.
    pub(crate) writes: bool,
    /// The signed-in operator, if any.
    pub(crate) session: Option<Session>,
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
