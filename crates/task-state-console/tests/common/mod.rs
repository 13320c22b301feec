//! What the console's tests share: consoles on the memory backend and on a private Redis,
//! requests through the router, and a capture of the log.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use task_state_console::{Backend, Console, ConsoleConfig, OperatorToken};
use task_state_core::TaskRepository;
use task_state_memory::InMemoryTaskRepository;
use task_state_redis::testing::{server_or_skip_with, RedisServer};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
use tower::ServiceExt;

/// The host the test requests are sent to.
pub const HOST: &str = "console.test";
/// The origin of the console's own pages.
pub const ORIGIN: &str = "http://console.test";
/// Alice's token.
pub const ALICE: &str = "alice:correct-horse-battery";

/// A configuration with writes on or off, and Alice's token.
pub fn config(writes: bool) -> ConsoleConfig {
    let mut config = ConsoleConfig::default();
    config.allow_writes = writes;
    config.tokens = OperatorToken::parse_list(ALICE).unwrap();
    config.live_poll = Duration::from_millis(50);
    config.page_size = 50;
    config
}

/// A console on a fresh in-memory store.
pub fn memory(config: ConsoleConfig) -> (Console, Arc<InMemoryTaskRepository>) {
    let repo = Arc::new(InMemoryTaskRepository::default());
    let console = Console::new(config, Backend::any(repo.clone())).unwrap();
    (console, repo)
}

/// A private Redis, with `args`, and the repository connected to it with `url`.
pub async fn redis_with(
    args: &[&str],
    url: impl Fn(&RedisServer) -> String,
) -> Option<(RedisServer, RedisTaskRepository)> {
    let server = server_or_skip_with(args)?;
    let settings = RedisRepositorySettings::builder()
        .with_write_url(url(&server))
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    Some((server, repo))
}

/// A private Redis and a console on it.
pub async fn redis(config: ConsoleConfig) -> Option<(Console, RedisTaskRepository, RedisServer)> {
    let (server, repo) = redis_with(&[], RedisServer::url).await?;
    let console = Console::new(config, Backend::redis(repo.clone())).unwrap();
    Some((console, repo, server))
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The session cookie that a sign-in set, as a `Cookie` header value.
    pub fn session_cookie(&self) -> String {
        self.header("set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// The value of the hidden `csrf` field of the page's first form that has one.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

pub async fn send(console: &Console, request: Request<Body>) -> Reply {
    let response: Response<Body> = console.router().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(console: &Console, path: &str) -> Reply {
    get_with(console, path, &[]).await
}

pub async fn get_with(console: &Console, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(path).header(header::HOST, HOST);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(console, request.body(Body::empty()).unwrap()).await
}

/// A form POST from the console's own origin unless `headers` name another (an empty
/// value: no such header).
pub async fn post(console: &Console, path: &str, form: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("origin"))
    {
        request = request.header(header::ORIGIN, ORIGIN);
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        request = request.header(*k, *v);
    }
    send(console, request.body(Body::from(form.to_owned())).unwrap()).await
}

/// Signs in with `token`; returns the cookie and the CSRF token of the session.
pub async fn sign_in(console: &Console, token: &str) -> (String, String) {
    let reply = post(console, "/login", &format!("token={token}"), &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let cookie = reply.session_cookie();
    let page = get_with(console, "/", &[("cookie", &cookie)]).await;
    (cookie, page.csrf())
}

/// Saves a task with a log line.
pub async fn plant(repo: &dyn TaskRepository, id: &str, service: &str, user: &str) {
    use task_state_core::{TaskRecord, TaskStatus};
    repo.save(TaskRecord::new(id, service, user, TaskStatus::Pending))
        .await
        .unwrap();
}

/// What the process logged while a [`LogCapture`] was installed.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs it as this thread's subscriber (the tests' runtime has one thread).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
