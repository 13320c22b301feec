//! The handlers that change tasks: cancel and delete one task, or the tasks of a filter in
//! bulk, each behind a confirmation page and a session.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use task_state_core::{Error, TaskStatus};

use super::views::{busy, filter_of, record, ListQuery};
use super::{ctx, Name, Problem, Shared};
use crate::auth::{self, Session};
use crate::listing::{self, Filter};
use crate::pages::{self, Action, Ctx};
use crate::App;

/// A write's form. A missing field reads as empty, so that a forged form without it is
/// refused (and logged) like one with a wrong token, not rejected before the check.
#[derive(Deserialize)]
pub(super) struct WriteForm {
    #[serde(default)]
    pub(super) csrf: String,
}

const WRITES_OFF: &str =
    "writes are off: this console is read-only unless started with --allow-writes and a token";

pub(super) fn writes_off(ctx: &Ctx) -> Problem {
    Problem::new(ctx, StatusCode::FORBIDDEN, "Refused", WRITES_OFF)
}

/// The operator's session when a write may go on: writes are on, the request comes from
/// the console itself, the operator is signed in, and (for a write, not its confirmation
/// page) the form carries the session's CSRF token. Every refusal is logged.
pub(super) fn writer(
    app: &App,
    ctx: &Ctx,
    headers: &HeaderMap,
    csrf: Option<&str>,
    action: &str,
    task_id: Option<&str>,
) -> Result<Session, Problem> {
    let refuse = |status: StatusCode, reason: String| {
        if csrf.is_some() {
            app.metrics
                .writes
                .with_label_values(&[action, "refused"])
                .inc();
            tracing::warn!(target: "task_state_console::audit", action, task_id = task_id.unwrap_or(""), %reason, "write refused");
        }
        Problem::new(ctx, status, "Refused", reason)
    };
    if !app.config.allow_writes {
        return Err(refuse(StatusCode::FORBIDDEN, WRITES_OFF.to_owned()));
    }
    if csrf.is_some() {
        if let Some(reason) = auth::cross_site(headers) {
            return Err(refuse(StatusCode::FORBIDDEN, reason));
        }
    }
    let Some(session) = app.sessions.of(headers) else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "not signed in: sign in with an operator's token first".to_owned(),
        ));
    };
    if let Some(csrf) = csrf {
        if !session.csrf_matches(csrf) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "the form's CSRF token is not this session's (operator {})",
                    session.operator
                ),
            ));
        }
    }
    Ok(session)
}

pub(super) async fn confirm_cancel(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
) -> Response {
    confirm(app, headers, id, Action::Cancel).await
}

pub(super) async fn confirm_delete(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
) -> Response {
    confirm(app, headers, id, Action::Delete).await
}

/// The confirmation page of a write; without a session, the sign-in page.
async fn confirm(app: Arc<App>, headers: HeaderMap, id: String, action: Action) -> Response {
    let ctx = ctx(&app, &headers);
    let session = match writer(&app, &ctx, &headers, None, action.as_str(), Some(&id)) {
        Ok(session) => session,
        Err(_) if app.config.allow_writes => {
            let back = format!("{}/{}", pages::task_url(&id), action.as_str());
            return Redirect::to(&format!("/login?next={}", pages::encode(&back))).into_response();
        }
        Err(problem) => return problem.into_response(),
    };
    match record(&app, &ctx, &id).await {
        Ok(record) => pages::confirm(&ctx, &session, &record, action).into_response(),
        Err(problem) => problem.into_response(),
    }
}

pub(super) async fn cancel(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
    Form(form): Form<WriteForm>,
) -> Response {
    write(app, headers, id, form, Action::Cancel).await
}

pub(super) async fn delete(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
    Form(form): Form<WriteForm>,
) -> Response {
    write(app, headers, id, form, Action::Delete).await
}

/// A write, checked by [`writer`], then [`apply`]'d.
async fn write(
    app: Arc<App>,
    headers: HeaderMap,
    id: String,
    form: WriteForm,
    action: Action,
) -> Response {
    let ctx = ctx(&app, &headers);
    let session = match writer(
        &app,
        &ctx,
        &headers,
        Some(&form.csrf),
        action.as_str(),
        Some(&id),
    ) {
        Ok(session) => session,
        Err(problem) => return problem.into_response(),
    };
    let outcome = apply(&app, &session.operator, &id, action).await;
    match (outcome, action) {
        (Ok(true), Action::Cancel) => Redirect::to(&pages::task_url(&id)).into_response(),
        (Ok(true), Action::Delete) => pages::done(
            &ctx,
            "Deleted",
            &format!("Task {id} was deleted."),
            ("/tasks", "Tasks"),
        )
        .into_response(),
        (Ok(false), _) => Problem::new(
            &ctx,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no task {id:?}."),
        )
        .into_response(),
        (Err(e), _) => Problem::from_error(&ctx, &e).into_response(),
    }
}

/// Applies `action` to `id` for `operator`, counts it and logs it with the operator's name:
/// `Ok(true)` when done, `Ok(false)` when there is no such task.
async fn apply(app: &App, operator: &str, id: &str, action: Action) -> Result<bool, Error> {
    let outcome = match action {
        Action::Cancel => {
            use TaskStatus::*;
            let note = format!("cancellation requested by {operator} in the console");
            app.store
                .repo
                .transition_ack(
                    id,
                    &[Pending, Dispatching, Running],
                    CancelRequested,
                    Some(&note),
                )
                .await
        }
        Action::Delete => app.store.repo.delete(id).await,
    };
    let label = match &outcome {
        Ok(true) => "ok",
        Ok(false) => "not_found",
        Err(Error::Conflict { .. }) => "conflict",
        Err(_) => "error",
    };
    app.metrics
        .writes
        .with_label_values(&[action.as_str(), label])
        .inc();
    match &outcome {
        Ok(_) | Err(Error::Conflict { .. }) => {
            tracing::info!(target: "task_state_console::audit", %operator, action = action.as_str(), task_id = %id, outcome = label, "write")
        }
        Err(e) => {
            tracing::warn!(target: "task_state_console::audit", %operator, action = action.as_str(), task_id = %id, outcome = label, error = %e, "write failed")
        }
    }
    outcome
}

/// The tasks a bulk action on `filter` would change: for a cancellation, those still
/// pending, dispatching or running.
async fn bulk_targets(
    app: &App,
    ctx: &Ctx,
    filter: &Filter,
    action: Action,
) -> Result<Vec<String>, Response> {
    if !filter.narrows() {
        return Err(Problem::new(
            ctx,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "a bulk action needs a filter (an id prefix, a service, a user or a status): it is \
             not offered on every task of the store",
        )
        .into_response());
    }
    // Held while every record of the filter is read, inside this future: dropped with it.
    let Ok(_permit) = app.scans.try_acquire() else {
        return Err(busy(ctx, app.config.max_status_scans));
    };
    let (ids, _) = listing::matching(app.store.repo.as_ref(), filter, |r| {
        action == Action::Delete || pages::cancellable(r.status)
    })
    .await
    .map_err(|e| Problem::from_error(ctx, &e).into_response())?;
    Ok(ids)
}

/// The action of a bulk path (`/bulk/cancel`, `/bulk/delete`); any other is not found.
pub(super) struct BulkAction(Action);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BulkAction {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Action::parse(&name)
            .map(BulkAction)
            .ok_or_else(|| (StatusCode::NOT_FOUND, "no such bulk action\n").into_response())
    }
}

pub(super) async fn confirm_bulk(
    State(app): Shared,
    headers: HeaderMap,
    BulkAction(action): BulkAction,
    Query(q): Query<ListQuery>,
) -> Response {
    let ctx = ctx(&app, &headers);
    let filter = match filter_of(&ctx, q) {
        Ok(filter) => filter,
        Err(problem) => return problem.into_response(),
    };
    let session = match writer(&app, &ctx, &headers, None, action.as_str(), None) {
        Ok(session) => session,
        Err(_) if app.config.allow_writes => {
            let back = pages::bulk_url(&filter, action);
            return Redirect::to(&format!("/login?next={}", pages::encode(&back))).into_response();
        }
        Err(problem) => return problem.into_response(),
    };
    match bulk_targets(&app, &ctx, &filter, action).await {
        Ok(ids) => pages::confirm_bulk(&ctx, &session, &filter, action, &ids, None).into_response(),
        Err(response) => response,
    }
}

/// A bulk action's form: the filter, the number of tasks its confirmation named, and the
/// session's CSRF token.
#[derive(Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    csrf: String,
    count: Option<usize>,
    service: Option<String>,
    user: Option<String>,
    status: Option<String>,
    id: Option<String>,
}

pub(super) async fn bulk(
    State(app): Shared,
    headers: HeaderMap,
    BulkAction(action): BulkAction,
    Form(form): Form<BulkForm>,
) -> Response {
    let ctx = ctx(&app, &headers);
    let session = match writer(
        &app,
        &ctx,
        &headers,
        Some(&form.csrf),
        action.as_str(),
        None,
    ) {
        Ok(session) => session,
        Err(problem) => return problem.into_response(),
    };
    let query = ListQuery {
        service: form.service,
        user: form.user,
        status: form.status,
        id: form.id,
        sort: None,
        after: None,
        from: None,
        scan: None,
    };
    let filter = match filter_of(&ctx, query) {
        Ok(filter) => filter,
        Err(problem) => return problem.into_response(),
    };
    let ids = match bulk_targets(&app, &ctx, &filter, action).await {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    // The tasks changed since the confirmation: confirm again, naming the new number.
    if form.count != Some(ids.len()) {
        let changed = format!(
            "The tasks of this filter changed since the confirmation ({} then, {} now): nothing \
             was done. Confirm again.",
            form.count
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
            ids.len()
        );
        return (
            StatusCode::CONFLICT,
            pages::confirm_bulk(&ctx, &session, &filter, action, &ids, Some(&changed)),
        )
            .into_response();
    }
    let mut tally = pages::BulkTally::default();
    for id in &ids {
        match apply(&app, &session.operator, id, action).await {
            Ok(true) => tally.done += 1,
            Ok(false) => tally.gone += 1,
            Err(Error::Conflict { .. }) => tally.conflict += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tracing::info!(target: "task_state_console::audit", operator = %session.operator, action = action.as_str(), bulk = true,
        tasks = ids.len(), done = tally.done, gone = tally.gone, conflict = tally.conflict, failed = tally.failed, "bulk write");
    pages::bulk_done(&ctx, &filter, action, &tally).into_response()
}
