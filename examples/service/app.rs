//! The service's routes and its lifecycle, shared by `main.rs` and the end-to-end test
//! (`tests/service.rs`).

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use task_state::redis::RedisRepositoryProvider;
use task_state::serde_json::json;
use task_state::{Error, RawMap, TaskRecord, TaskRepository, TaskStatus};
use tokio::net::TcpListener;

/// The body of `POST /tasks`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewTask {
    /// The service the task belongs to.
    pub(crate) service: String,
    /// The user who asked for it.
    pub(crate) user_id: String,
    /// Anything the workload needs, stored as given: each value keeps its exact text.
    #[serde(default)]
    pub(crate) parameters: RawMap,
}

/// The routes: `/healthz`, `/admin/metrics`, `POST /tasks`, `GET /tasks/{id}`.
pub(crate) fn router(provider: Arc<RedisRepositoryProvider>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/admin/metrics", get(metrics))
        .route("/tasks", post(create_task))
        .route("/tasks/{id}", get(get_task))
        .with_state(provider)
}

/// The lifespan: starts the provider (connect, check the server, start the expiry listener
/// and the reconciler), serves on `listener` until `shutdown` completes, lets requests in
/// flight finish, then closes the provider.
///
/// # Errors
/// The provider's start-up error (a bad configuration, Redis unreachable), or the server's.
pub(crate) async fn run(
    listener: TcpListener,
    provider: Arc<RedisRepositoryProvider>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    provider.start().await?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let served = axum::serve(listener, router(provider.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    provider.close().await;
    tracing::info!("stopped");
    Ok(served?)
}

async fn healthz(State(provider): State<Arc<RedisRepositoryProvider>>) -> Response {
    match provider.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(State(provider): State<Arc<RedisRepositoryProvider>>) -> Response {
    Json(provider.runtime_status().await).into_response()
}

async fn create_task(
    State(provider): State<Arc<RedisRepositoryProvider>>,
    Json(new): Json<NewTask>,
) -> Response {
    let created = async {
        let repo = provider.repository().await?;
        let id = repo.next_task_id().await?;
        let mut record = TaskRecord::new(id, new.service, new.user_id, TaskStatus::Pending);
        record.parameters = new.parameters;
        repo.create(record).await
    };
    match created.await {
        Ok(record) => record_response(StatusCode::CREATED, &record),
        Err(e) => error_response(e),
    }
}

async fn get_task(
    State(provider): State<Arc<RedisRepositoryProvider>>,
    Path(id): Path<String>,
) -> Response {
    let found = async { provider.repository().await?.get(&id).await };
    match found.await {
        Ok(Some(record)) => record_response(StatusCode::OK, &record),
        Ok(None) => error_response(Error::NotFound { task_id: id }),
        Err(e) => error_response(e),
    }
}

/// The record as stored: the Python package's JSON, byte for byte.
fn record_response(status: StatusCode, record: &TaskRecord) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        record.to_json(),
    )
        .into_response()
}

fn error_response(e: Error) -> Response {
    let status = match &e {
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::AlreadyExists { .. } | Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Backend { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}
