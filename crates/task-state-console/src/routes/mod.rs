//! The routes and their handlers, and the headers every response carries.
//!
//! The handlers live by what they do: [`views`] shows the store, [`session`] signs an
//! operator in and out, [`writes`] changes tasks (one at a time or in bulk).

mod session;
mod views;
mod writes;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;
use task_state_core::Error;
use task_state_redis::mask_url_passwords;

use crate::pages::{self, Ctx};
use crate::App;

use session::{login, login_page, logout};
use views::{check_page, events, overview, run_check, task, task_list, users};
use writes::{bulk, cancel, confirm_bulk, confirm_cancel, confirm_delete, delete};

/// Sent with every response: nothing runs but the console's own script, nothing loads from
/// elsewhere, no other site may frame the pages or receive their forms.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../../static/console.css");

const SCRIPT: &str = include_str!("../../static/console.js");

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
        .route("/bulk/{action}", get(confirm_bulk).post(bulk))
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
