//! The pages that show the store: the overview, task lists, a task and its live log, a
//! service's users, the consistency check.

use axum::extract::{Query, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde::Deserialize;
use task_state_core::{TaskRecord, TaskStatus};

use super::{ctx, Name, PageResult, Problem, Shared};
use crate::auth;
use crate::listing::{self, Cursor, Filter, Sort};
use crate::pages::{self, Ctx};
use crate::{live, App};

/// The overview's query: which page of the services (from 1).
#[derive(Debug, Deserialize)]
pub(super) struct OverviewQuery {
    page: Option<usize>,
}

pub(super) async fn overview(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Markup {
    let ctx = ctx(&app, &headers);
    let services = pages::ServicePage {
        number: q.page.unwrap_or(1).max(1),
        size: app.config.page_size,
    };
    let janitor = app
        .store
        .janitor
        .as_ref()
        .map(|l| (l.stats(), l.reconcile_stats()));
    let counts = app.counts.read().unwrap_or_else(|e| e.into_inner());
    app.check.with(|check| {
        pages::overview(
            &ctx,
            &counts,
            services,
            janitor,
            check,
            app.store.redis.is_some(),
        )
    })
}

/// The list page's query; empty fields are no filter.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    pub(super) service: Option<String>,
    pub(super) user: Option<String>,
    pub(super) status: Option<String>,
    /// Ids that begin with this.
    pub(super) id: Option<String>,
    /// `id`, `-updated`, ...
    pub(super) sort: Option<String>,
    /// In task id order, the ids after this one.
    pub(super) after: Option<String>,
    /// Sorted by another column, this many tasks in.
    pub(super) from: Option<usize>,
    /// Scan for the status even when the last count found no such task.
    pub(super) scan: Option<String>,
}

fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The filter a list's query asks for.
pub(super) fn filter_of(ctx: &Ctx, q: ListQuery) -> Result<Filter, Problem> {
    let status = match given(q.status) {
        Some(s) => Some(
            s.parse::<TaskStatus>()
                .map_err(|e| Problem::from_error(ctx, &e))?,
        ),
        None => None,
    };
    let sort = match given(q.sort) {
        Some(s) => Sort::parse(&s).ok_or_else(|| {
            Problem::new(
                ctx,
                StatusCode::BAD_REQUEST,
                "Bad request",
                format!("cannot sort by {s:?}: sort by id, service, user, status, priority, created or updated, with a - before it for descending"),
            )
        })?,
        None => Sort::default(),
    };
    let cursor = match (given(q.after), q.from) {
        (_, Some(from)) if sort.reads_every_record() => Cursor::Offset(from),
        (Some(after), _) if !sort.reads_every_record() => Cursor::After(after),
        _ => Cursor::Start,
    };
    Ok(Filter {
        service: given(q.service),
        user: given(q.user),
        status,
        id_prefix: q.id.filter(|id| !id.is_empty()),
        sort,
        cursor,
    })
}

pub(super) async fn task_list(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &headers);
    let scan = given(q.scan.clone());
    let filter = filter_of(&ctx, q)?;
    let (services, counted) = {
        let counts = app.counts.read().unwrap_or_else(|e| e.into_inner());
        let services: Vec<String> = counts
            .counts
            .as_ref()
            .map(|c| {
                let (top, _) = c.top(app.config.top_services);
                top.into_iter().map(|(s, _)| s.to_owned()).collect()
            })
            .unwrap_or_default();
        // The count knows tasks by service and status, not by user.
        let counted = match (&counts.counts, filter.status, &filter.user) {
            (Some(c), Some(status), None) => Some(pages::Counted {
                tasks: c.with_status(filter.service.as_deref(), status),
                at: c.at,
            }),
            _ => None,
        };
        (services, counted)
    };
    // The last count found none: no scan of the whole index, unless asked for.
    let skipped = counted.is_some_and(|c| c.tasks == 0) && scan.is_none();
    let page = if skipped {
        listing::Page::default()
    } else {
        // Held while the scan runs, inside this future: dropped with it.
        let _permit = if filter.scans() {
            match app.scans.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => return Ok(busy(&ctx, app.config.max_status_scans)),
            }
        } else {
            None
        };
        listing::page(app.store.repo.as_ref(), &filter, app.config.page_size)
            .await
            .map_err(|e| Problem::from_error(&ctx, &e))?
    };
    let list = pages::TaskList {
        filter: &filter,
        page: &page,
        services: &services,
        counted,
        skipped,
    };
    Ok(pages::task_list(&ctx, &list).into_response())
}

/// Seconds a client is asked to wait when every status scan is taken.
const SCAN_RETRY_AFTER: &str = "5";

/// 503 with `Retry-After`: every status scan is taken.
pub(super) fn busy(ctx: &Ctx, scans: usize) -> Response {
    tracing::info!(scans, "a status filter waits: every scan is taken");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, SCAN_RETRY_AFTER)],
        pages::problem(
            ctx,
            "Busy",
            &format!(
                "{scans} task lists filtered by status, sorted by a column other than the id or \
                 named by a bulk action are being read already (each may read every record of \
                 the index); try again in a few seconds."
            ),
        ),
    )
        .into_response()
}

/// The record of `id`, or the page that says why there is none.
pub(super) async fn record(app: &App, ctx: &Ctx, id: &str) -> Result<TaskRecord, Problem> {
    match app.store.repo.get(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Problem::new(
            ctx,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no task {id:?}."),
        )),
        Err(e) => Err(Problem::from_error(ctx, &e)),
    }
}

pub(super) async fn task(State(app): Shared, headers: HeaderMap, Name(id): Name) -> PageResult {
    let ctx = ctx(&app, &headers);
    let record = record(&app, &ctx, &id).await?;
    Ok(pages::task(&ctx, &record))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    from: Option<usize>,
}

pub(super) async fn events(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
    Query(q): Query<EventsQuery>,
) -> Response {
    // A reconnecting EventSource says where it stopped; it knows better than the URL.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let from = resume.or(q.from).unwrap_or(0);
    let Some(place) = app.followers.admit() else {
        let max = app.followers.max_streams();
        tracing::info!(max, task_id = %id, "a live log refused: every stream is taken");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::RETRY_AFTER, "30"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            format!(
                "the console already streams {max} live logs, its most; reload the page later \
                 to follow this one\n"
            ),
        )
            .into_response();
    };
    live::follow(
        &app.followers,
        &app.store,
        &id,
        from,
        app.config.live_poll,
        app.stopping.subscribe(),
        place,
    )
    .into_response()
}

pub(super) async fn users(
    State(app): Shared,
    headers: HeaderMap,
    Name(service): Name,
) -> PageResult {
    let ctx = ctx(&app, &headers);
    let users = app
        .store
        .repo
        .list_users_by_service(&service)
        .await
        .map_err(|e| Problem::from_error(&ctx, &e))?;
    Ok(pages::users(&ctx, &service, &users))
}

pub(super) async fn check_page(State(app): Shared, headers: HeaderMap) -> Markup {
    let ctx = ctx(&app, &headers);
    app.check
        .with(|state| pages::check(&ctx, state, app.store.redis.is_some()))
}

pub(super) async fn run_check(State(app): Shared, headers: HeaderMap) -> Result<Redirect, Problem> {
    let ctx = ctx(&app, &headers);
    // The check only reads, but it is work: another site must not be able to start it.
    if let Some(reason) = auth::cross_site(&headers) {
        tracing::warn!(%reason, "refused to start a consistency check");
        return Err(Problem::new(&ctx, StatusCode::FORBIDDEN, "Refused", reason));
    }
    let Some(redis) = app.store.redis.clone() else {
        return Err(Problem::new(
            &ctx,
            StatusCode::NOT_IMPLEMENTED,
            "Not available",
            "The consistency check needs the Redis backend.",
        ));
    };
    if app.check.start(redis) {
        tracing::info!("consistency check started from the console");
    }
    Ok(Redirect::to("/check"))
}
