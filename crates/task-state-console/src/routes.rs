//! The routes and their handlers, and the headers every response carries.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;
use task_state_core::{Error, TaskRecord, TaskStatus};
use task_state_redis::mask_url_passwords;

use crate::auth::{self, Session};
use crate::listing::{self, Filter};
use crate::pages::{self, Action, Ctx};
use crate::{live, App};

/// Sent with every response: nothing runs but the console's own script, nothing loads from
/// elsewhere, no other site may frame the pages or receive their forms.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../static/console.css");
const SCRIPT: &str = include_str!("../static/console.js");

type Shared = State<Arc<App>>;

/// A task id or a service from the path, as [`pages::segment`] wrote it.
struct Name(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Name {
    type Rejection = <Path<String> as axum::extract::FromRequestParts<S>>::Rejection;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(decoded) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(Name(pages::name_of_segment(decoded)))
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/tasks", get(task_list))
        .route("/tasks/{id}", get(task))
        .route("/tasks/{id}/events", get(events))
        .route("/tasks/{id}/cancel", get(confirm_cancel).post(cancel))
        .route("/tasks/{id}/delete", get(confirm_delete).post(delete))
        .route("/services/{service}/users", get(users))
        .route("/check", get(check_page).post(run_check))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route(
            "/static/console.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route(
            "/static/console.js",
            get(|| async { asset("text/javascript", SCRIPT) }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Refuses hosts the console does not answer for (DNS rebinding), then adds the security
/// headers to whatever the handler answered.
async fn guard(State(app): Shared, request: Request, next: Next) -> Response {
    let allowed = &app.config.allowed_hosts;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut response = if allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
    {
        next.run(request).await
    } else {
        tracing::warn!(host = %host.chars().take(80).collect::<String>(), "request for a host the console does not serve");
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this console does not serve that host\n",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: with it a browser sends `Origin: null` with the console's own forms.
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What a page needs to know about the request.
fn ctx(app: &App, headers: &HeaderMap) -> Ctx {
    Ctx {
        writes: app.config.allow_writes,
        session: app
            .config
            .allow_writes
            .then(|| app.sessions.of(headers))
            .flatten(),
    }
}

/// A page that could not be made: its status and what to tell the operator.
struct Problem {
    status: StatusCode,
    title: &'static str,
    message: String,
    ctx: Ctx,
}

impl Problem {
    fn new(ctx: &Ctx, status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            message: message.into(),
            ctx: ctx.clone(),
        }
    }

    fn from_error(ctx: &Ctx, e: &Error) -> Self {
        let (status, title) = match e {
            Error::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "Bad request"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
            Error::Conflict { .. } | Error::AlreadyExists { .. } => {
                (StatusCode::CONFLICT, "Conflict")
            }
            Error::Decode { .. } | Error::WrongType { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Unreadable record")
            }
            _ => (StatusCode::BAD_GATEWAY, "The store failed"),
        };
        Problem::new(ctx, status, title, mask_url_passwords(&e.to_string()))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status,
            pages::problem(&self.ctx, self.title, &self.message),
        )
            .into_response()
    }
}

type PageResult = Result<Markup, Problem>;

async fn not_found(State(app): Shared, headers: HeaderMap) -> Problem {
    Problem::new(
        &ctx(&app, &headers),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
    )
}

/// The overview's query: which page of the services (from 1).
#[derive(Debug, Deserialize)]
struct OverviewQuery {
    page: Option<usize>,
}

async fn overview(
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
struct ListQuery {
    service: Option<String>,
    user: Option<String>,
    status: Option<String>,
    after: Option<String>,
    /// Scan for the status even when the last count found no such task.
    scan: Option<String>,
}

fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

async fn task_list(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    let ctx = ctx(&app, &headers);
    let status = match given(q.status) {
        Some(s) => Some(
            s.parse::<TaskStatus>()
                .map_err(|e| Problem::from_error(&ctx, &e))?,
        ),
        None => None,
    };
    let filter = Filter {
        service: given(q.service),
        user: given(q.user),
        status,
        after: given(q.after),
    };
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
    let skipped = counted.is_some_and(|c| c.tasks == 0) && given(q.scan).is_none();
    let page = if skipped {
        listing::Page::default()
    } else {
        // Held while the scan runs, inside this future: dropped with it.
        let _permit = match filter.status {
            Some(_) => match app.scans.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => return Ok(busy(&ctx, app.config.max_status_scans)),
            },
            None => None,
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
fn busy(ctx: &Ctx, scans: usize) -> Response {
    tracing::info!(scans, "a status filter waits: every scan is taken");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, SCAN_RETRY_AFTER)],
        pages::problem(
            ctx,
            "Busy",
            &format!(
                "{scans} task lists filtered by status are being read already (each may read \
                 every record of the index); try again in a few seconds."
            ),
        ),
    )
        .into_response()
}

/// The record of `id`, or the page that says why there is none.
async fn record(app: &App, ctx: &Ctx, id: &str) -> Result<TaskRecord, Problem> {
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

async fn task(State(app): Shared, headers: HeaderMap, Name(id): Name) -> PageResult {
    let ctx = ctx(&app, &headers);
    let record = record(&app, &ctx, &id).await?;
    Ok(pages::task(&ctx, &record))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<usize>,
}

async fn events(
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
        &app.store.repo,
        &id,
        from,
        app.config.live_poll,
        app.stopping.subscribe(),
        place,
    )
    .into_response()
}

async fn users(State(app): Shared, headers: HeaderMap, Name(service): Name) -> PageResult {
    let ctx = ctx(&app, &headers);
    let users = app
        .store
        .repo
        .list_users_by_service(&service)
        .await
        .map_err(|e| Problem::from_error(&ctx, &e))?;
    Ok(pages::users(&ctx, &service, &users))
}

async fn check_page(State(app): Shared, headers: HeaderMap) -> Markup {
    let ctx = ctx(&app, &headers);
    app.check
        .with(|state| pages::check(&ctx, state, app.store.redis.is_some()))
}

async fn run_check(State(app): Shared, headers: HeaderMap) -> Result<Redirect, Problem> {
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

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// `next` when it is a path of this console, so that signing in never leads elsewhere.
fn local_path(next: Option<String>) -> Option<String> {
    next.filter(|n| auth::local_path(n).is_some())
}

async fn login_page(State(app): Shared, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Markup {
    pages::login(&ctx(&app, &headers), None, local_path(q.next).as_deref())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

async fn login(State(app): Shared, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let ctx = ctx(&app, &headers);
    if !app.config.allow_writes {
        return writes_off(&ctx).into_response();
    }
    if let Some(reason) = auth::cross_site(&headers) {
        tracing::warn!(%reason, "refused a cross-site sign-in");
        return Problem::new(&ctx, StatusCode::FORBIDDEN, "Refused", reason).into_response();
    }
    let next = local_path(form.next);
    match app.config.operator_of(form.token.trim()) {
        Some(operator) => {
            tracing::info!(target: "task_state_console::audit", %operator, action = "sign_in", "operator signed in");
            let id = app.sessions.open(operator);
            (
                [(header::SET_COOKIE, auth::session_cookie(&id))],
                Redirect::to(next.as_deref().unwrap_or("/")),
            )
                .into_response()
        }
        None => {
            tracing::warn!(target: "task_state_console::audit", action = "sign_in", "sign-in with a token that is not configured");
            (
                StatusCode::UNAUTHORIZED,
                pages::login(&ctx, Some("That token is not valid."), next.as_deref()),
            )
                .into_response()
        }
    }
}

/// A write's form. A missing field reads as empty, so that a forged form without it is
/// refused (and logged) like one with a wrong token, not rejected before the check.
#[derive(Deserialize)]
struct WriteForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): Shared, headers: HeaderMap, Form(form): Form<WriteForm>) -> Response {
    let ctx = ctx(&app, &headers);
    if let Err(problem) = writer(&app, &ctx, &headers, Some(&form.csrf), "sign_out", None) {
        return problem.into_response();
    }
    app.sessions.close(&headers);
    (
        [(header::SET_COOKIE, auth::expired_cookie())],
        Redirect::to("/"),
    )
        .into_response()
}

const WRITES_OFF: &str =
    "writes are off: this console is read-only unless started with --allow-writes and a token";

fn writes_off(ctx: &Ctx) -> Problem {
    Problem::new(ctx, StatusCode::FORBIDDEN, "Refused", WRITES_OFF)
}

/// The operator's session when a write may go on: writes are on, the request comes from
/// the console itself, the operator is signed in, and (for a write, not its confirmation
/// page) the form carries the session's CSRF token. Every refusal is logged.
fn writer(
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

async fn confirm_cancel(State(app): Shared, headers: HeaderMap, Name(id): Name) -> Response {
    confirm(app, headers, id, Action::Cancel).await
}

async fn confirm_delete(State(app): Shared, headers: HeaderMap, Name(id): Name) -> Response {
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

async fn cancel(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
    Form(form): Form<WriteForm>,
) -> Response {
    write(app, headers, id, form, Action::Cancel).await
}

async fn delete(
    State(app): Shared,
    headers: HeaderMap,
    Name(id): Name,
    Form(form): Form<WriteForm>,
) -> Response {
    write(app, headers, id, form, Action::Delete).await
}

/// A write, checked by [`writer`], applied, counted and logged with the operator's name.
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
    let operator = session.operator.as_str();
    let outcome = match action {
        Action::Cancel => {
            use TaskStatus::*;
            let note = format!("cancellation requested by {operator} in the console");
            app.store
                .repo
                .transition(
                    &id,
                    &[Pending, Dispatching, Running],
                    CancelRequested,
                    Some(&note),
                )
                .await
                .map(|r| r.is_some())
        }
        Action::Delete => app.store.repo.delete(&id).await,
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

async fn metrics(State(app): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        app.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(app): Shared) -> Response {
    match app.store.ping().await {
        Ok(()) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok\n",
        )
            .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("unavailable: {reason}\n"),
        )
            .into_response(),
    }
}
