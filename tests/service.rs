//! The example service end to end: started on a free loopback port against a private Redis,
//! driven over HTTP, shut down gracefully, after which the provider is closed.

#[path = "../examples/service/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use task_state::redis::testing::server_or_skip_with;
use task_state::redis::{RedisRepositoryProvider, RedisRepositorySettings};

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl Http {
    async fn send(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.client.request(request).await.expect("HTTP request");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
        (status, json)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, "").await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_serves_tasks_health_and_metrics_and_shuts_down() {
    let Some(mut server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_timezone("UTC")
        .with_command_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let provider = Arc::new(RedisRepositoryProvider::new(settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app::run(listener, provider.clone(), async {
        let _ = stopped.await;
    }));
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        addr,
    };

    let (status, health) = http.get("/healthz").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let body = r#"{"service":"render","user_id":"alice","parameters":{"frames":240,"ratio":0.30000000000000004,"big":123456789012345678901234567890}}"#;
    let (status, created) = http.send(Method::POST, "/tasks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["task_id"], "1");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["parameters"]["frames"], 240);
    // The parameters are stored as the client sent them, every digit kept.
    assert!(server.cli(&["GET", "task:1"]).contains(
        r#""parameters":{"frames":240,"ratio":0.30000000000000004,"big":123456789012345678901234567890}"#
    ));
    assert_eq!(server.cli(&["SISMEMBER", "index:user:alice", "1"]), "1");

    let (status, fetched) = http.get("/tasks/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created, "GET returns the record as created");
    assert_eq!(http.get("/tasks/2").await.0, StatusCode::NOT_FOUND);
    assert_eq!(http.get("/tasks/a:b").await.0, StatusCode::BAD_REQUEST);
    let bad = r#"{"service":"a:b","user_id":"alice"}"#;
    assert_eq!(
        http.send(Method::POST, "/tasks", bad).await.0,
        StatusCode::BAD_REQUEST
    );

    let (status, metrics) = http.get("/admin/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metrics["connected"], true, "{metrics}");
    assert_eq!(metrics["notifications"]["state"], "enabled", "{metrics}");
    assert_eq!(metrics["listener"]["failures"], 0, "{metrics}");
    assert_eq!(metrics["reconciler"]["interval_seconds"], 300, "{metrics}");

    server.kill();
    let (status, health) = http.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(
        health["error"].as_str().unwrap().contains("ping"),
        "{health}"
    );
    server.restart().unwrap();

    drop(http);
    stop.send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("graceful shutdown in time")
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        !provider.runtime_status().await.connected,
        "closed at shutdown"
    );
}
