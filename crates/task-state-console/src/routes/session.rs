//! Signing in and out: the login page and form, and the redirect back to where the
//! operator was.

use axum::extract::{Query, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::Markup;
use serde::Deserialize;

use super::writes::{writer, writes_off, WriteForm};
use super::{ctx, Problem, Shared};
use crate::auth;
use crate::pages;

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `next` when it is a path of this console, so that signing in never leads elsewhere.
fn local_path(next: Option<String>) -> Option<String> {
    next.filter(|n| auth::local_path(n).is_some())
}

pub(super) async fn login_page(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Markup {
    pages::login(&ctx(&app, &headers), None, local_path(q.next).as_deref())
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub(super) async fn login(
    State(app): Shared,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
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

pub(super) async fn logout(
    State(app): Shared,
    headers: HeaderMap,
    Form(form): Form<WriteForm>,
) -> Response {
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
