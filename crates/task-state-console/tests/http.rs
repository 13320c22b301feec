//! The console over HTTP, through its router, on the memory backend and on a private Redis.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use task_state_console::{Backend, Console};
use task_state_core::{MockTaskRepository, TaskList, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::RedisServer;
use task_state_redis::{Janitor, JanitorOptions};

const SCRIPT: &str = "<script>alert(1)</script>";

#[tokio::test]
async fn store_text_is_escaped_on_every_page() {
    let (console, repo) = memory(config(true));
    let record = TaskRecord::new("7", "render", "<b>eve</b>", TaskStatus::Running).with_parameters(
        serde_json::from_str::<task_state_core::RawMap>(
            r#"{"title":"<img src=x onerror=alert(2)>","n":0.30000000000000004}"#,
        )
        .unwrap(),
    );
    repo.save(record).await.unwrap();
    repo.append_log("7", SCRIPT).await.unwrap();
    repo.set_jobs("7", &["<i>job</i>".to_owned()])
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();
    for path in [
        "/",
        "/tasks",
        "/tasks/7",
        "/services/render/users",
        "/tasks?user=%3Cb%3Eeve%3C%2Fb%3E",
    ] {
        let page = get(&console, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for raw in ["<script>alert", "<b>eve", "<img", "<i>job"] {
            assert!(!page.body.contains(raw), "{path} shows {raw} unescaped");
        }
        assert!(page.body.contains("&lt;b&gt;eve&lt;/b&gt;"), "{path}");
    }
    let task = get(&console, "/tasks/7").await;
    assert!(task.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(task.body.contains("&lt;img src=x onerror=alert(2)&gt;"));
    // Parameters are pretty-printed and keep their digits.
    assert!(
        task.body.contains("\n  &quot;n&quot;: 0.30000000000000004"),
        "{}",
        task.body
    );
}

#[tokio::test]
async fn every_response_carries_a_restrictive_content_security_policy() {
    let (console, repo) = memory(config(false));
    plant(repo.as_ref(), "1", "render", "alice").await;
    for path in [
        "/",
        "/tasks",
        "/tasks/1",
        "/tasks/404",
        "/no/such/page",
        "/metrics",
        "/healthz",
        "/check",
        "/login",
        "/static/console.js",
        "/static/console.css",
    ] {
        let reply = get(&console, path).await;
        let csp = reply.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp:?}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe"), "{path}: {csp:?}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
    }
    assert_eq!(
        get(&console, "/tasks/404").await.status,
        StatusCode::NOT_FOUND
    );
    // No page has an inline script: the only script is the console's file.
    let page = get(&console, "/tasks/1").await;
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(page
        .body
        .contains(r#"<script src="/static/console.js" defer></script>"#));
}

#[tokio::test]
async fn hosts_outside_the_allowed_list_are_refused() {
    let mut config = config(false);
    config.allowed_hosts = vec![HOST.to_owned()];
    let (console, _) = memory(config);
    assert_eq!(get(&console, "/").await.status, StatusCode::OK);
    let request = Request::get("/")
        .header("host", "attacker.example")
        .body(Body::empty())
        .unwrap();
    let reply = send(&console, request).await;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(reply
        .header("content-security-policy")
        .contains("default-src 'none'"));
}

#[tokio::test]
async fn writes_are_refused_while_they_are_off() {
    let (console, repo) = memory(config(false));
    plant(repo.as_ref(), "1", "render", "alice").await;
    let page = get(&console, "/tasks/1").await;
    assert!(!page.body.contains("Request cancellation"));
    let login = post(&console, "/login", &format!("token={ALICE}"), &[]).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert_eq!(login.header("set-cookie"), "");
    for path in ["/tasks/1/cancel", "/tasks/1/delete"] {
        assert_eq!(
            post(&console, path, "csrf=x", &[]).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(get(&console, path).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        repo.get("1").await.unwrap().unwrap().status,
        TaskStatus::Pending
    );
}

/// The cancel flow, checked step by step on `repo` behind `console`.
async fn cancel_needs_a_token_a_session_and_its_csrf_token(
    console: &Console,
    repo: &dyn TaskRepository,
) {
    let log = LogCapture::default();
    let _guard = log.install();
    plant(repo, "1", "render", "bob").await;
    repo.set_status("1", TaskStatus::Running, None)
        .await
        .unwrap();

    // Without a session: refused, and the confirmation page sends to the sign-in.
    let refused = post(console, "/tasks/1/cancel", "csrf=x", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("not signed in"));
    let confirm = get(console, "/tasks/1/cancel").await;
    assert_eq!(confirm.status, StatusCode::SEE_OTHER);
    assert_eq!(
        confirm.header("location"),
        "/login?next=%2Ftasks%2F1%2Fcancel"
    );
    let form = get(console, "/login?next=%2Ftasks%2F1%2Fcancel").await;
    assert!(
        form.body.contains(r#"name="next" value="/tasks/1/cancel""#),
        "{}",
        form.body
    );

    // A token that is not configured.
    let bad = post(
        console,
        "/login",
        "token=alice:correct-horse-battery-staple",
        &[],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.header("set-cookie"), "");
    // A sign-in from another site.
    let cross = post(
        console,
        "/login",
        &format!("token={ALICE}"),
        &[("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);

    // Signing in leads back to a page of the console, never elsewhere.
    let back = post(
        console,
        "/login",
        &format!("token={ALICE}&next=%2Ftasks%2F1%2Fcancel"),
        &[],
    )
    .await;
    assert_eq!(back.header("location"), "/tasks/1/cancel");
    for away in [
        "%2F%2Fattacker.example",
        "https%3A%2F%2Fattacker.example",
        "%2F%5Cattacker.example",
    ] {
        let stay = post(
            console,
            "/login",
            &format!("token={ALICE}&next={away}"),
            &[],
        )
        .await;
        assert_eq!(stay.header("location"), "/", "{away}");
    }

    let (cookie, csrf) = sign_in(console, ALICE).await;
    assert!(get_with(console, "/", &[("cookie", &cookie)])
        .await
        .body
        .contains("Signed in as <strong>alice</strong>"));
    let confirm = get_with(console, "/tasks/1/cancel", &[("cookie", &cookie)]).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert_eq!(confirm.csrf(), csrf);

    // The session without its CSRF token, and with it from another origin.
    let forged = post(
        console,
        "/tasks/1/cancel",
        "csrf=guess",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let without = post(console, "/tasks/1/cancel", "", &[("cookie", &cookie)]).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert!(
        without.body.contains("CSRF token is not this session"),
        "{}",
        without.body
    );
    let cross = post(
        console,
        "/tasks/1/cancel",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie), ("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let fetched = post(
        console,
        "/tasks/1/cancel",
        &format!("csrf={csrf}"),
        &[
            ("cookie", &cookie),
            ("origin", ""),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(fetched.status, StatusCode::FORBIDDEN);
    assert_eq!(
        repo.get("1").await.unwrap().unwrap().status,
        TaskStatus::Running
    );

    // All of it: the transition happens, with a log entry naming the operator.
    let done = post(
        console,
        "/tasks/1/cancel",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), "/tasks/1");
    let record = repo.get("1").await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::CancelRequested);
    assert!(record
        .logs
        .last()
        .unwrap()
        .ends_with(",cancellation requested by alice in the console"));

    // Once more: the task is no longer pending, dispatching or running.
    let again = post(
        console,
        "/tasks/1/cancel",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("cancel_requested"), "{}", again.body);

    let logged = log.text();
    assert!(
        logged.contains("operator=alice action=\"cancel\" task_id=1 outcome=\"ok\""),
        "{logged}"
    );
    assert!(logged.contains("write refused"), "{logged}");
    assert!(
        !logged.contains("correct-horse"),
        "a token secret was logged: {logged}"
    );
    let metrics = get(console, "/metrics").await.body;
    assert!(
        metrics.contains(r#"task_state_console_writes_total{action="cancel",outcome="ok"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn cancel_needs_a_token_a_session_and_its_csrf_token_in_memory() {
    let (console, repo) = memory(config(true));
    cancel_needs_a_token_a_session_and_its_csrf_token(&console, repo.as_ref()).await;
}

#[tokio::test]
async fn cancel_needs_a_token_a_session_and_its_csrf_token_on_redis() {
    let Some((console, repo, _server)) = redis(config(true)).await else {
        return;
    };
    cancel_needs_a_token_a_session_and_its_csrf_token(&console, &repo).await;
}

#[tokio::test]
async fn delete_is_confirmed_and_removes_the_task() {
    let (console, repo) = memory(config(true));
    plant(repo.as_ref(), "5", "render", "bob").await;
    let (cookie, csrf) = sign_in(&console, ALICE).await;
    let confirm = get_with(&console, "/tasks/5/delete", &[("cookie", &cookie)]).await;
    assert!(confirm.body.contains("cannot be undone"));
    assert!(
        repo.get("5").await.unwrap().is_some(),
        "a confirmation page deletes nothing"
    );
    let done = post(
        &console,
        "/tasks/5/delete",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(repo.get("5").await.unwrap().is_none());
    let gone = post(
        &console,
        "/tasks/5/delete",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // After signing out the cookie opens nothing.
    let out = post(
        &console,
        "/logout",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    plant(repo.as_ref(), "6", "render", "bob").await;
    let after = post(
        &console,
        "/tasks/6/delete",
        &format!("csrf={csrf}"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(after.status, StatusCode::FORBIDDEN);
    assert!(repo.get("6").await.unwrap().is_some());
}

/// Ids `1..=n` in the order of `list_ids`.
fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

/// Pending tasks of alice in render with these ids, as a mock's `list_by_ids` answers.
fn pending_tasks(ids: &[String]) -> TaskList {
    TaskList {
        records: ids
            .iter()
            .map(|id| TaskRecord::new(id, "render", "alice", TaskStatus::Pending))
            .collect(),
        unreadable: Vec::new(),
    }
}

#[tokio::test]
async fn a_page_of_a_hundred_thousand_tasks_reads_only_that_page() {
    let mut mock = MockTaskRepository::new();
    mock.expect_list_ids().returning(|_| Ok(ids(100_000)));
    mock.expect_list_by_ids()
        .times(1)
        .withf(|ids| ids.len() == 50 && ids[0] == "5001" && ids[49] == "5050")
        .returning(|ids| Ok(pending_tasks(ids)));
    let console = Console::new(config(false), Backend::any(Arc::new(mock))).unwrap();
    let page = get(&console, "/tasks?after=5000").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Tasks 5001–5050 of 100000 in the index."),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"href="/tasks?after=5050" rel="next""#));
    assert!(page.body.contains(r#"href="/tasks?after=4950" rel="prev""#));
    assert_eq!(page.body.matches("<a href=\"/tasks/").count(), 50);
}

#[tokio::test]
async fn the_task_list_pages_in_task_id_order_and_filters_on_redis() {
    let Some((console, repo, _server)) = redis(config(false)).await else {
        return;
    };
    for i in 1..=120 {
        let user = if i % 3 == 0 { "carol" } else { "dave" };
        plant(&repo, &i.to_string(), "render", user).await;
        if i % 10 == 0 {
            repo.set_status(&i.to_string(), TaskStatus::Failed, None)
                .await
                .unwrap();
        }
    }
    plant(&repo, "x-1", "etl", "dave").await;
    let first = get(&console, "/tasks").await;
    assert!(
        first.body.contains("Tasks 1–50 of 121 in the index."),
        "{}",
        first.body
    );
    assert!(first.body.contains(r#"href="/tasks?after=50" rel="next""#));
    let last = get(&console, "/tasks?after=100").await;
    assert!(last.body.contains("Tasks 101–121 of 121"), "{}", last.body);
    // Numeric ids first, in numeric order, then the others.
    let order: Vec<&str> = last
        .body
        .split("<a href=\"/tasks/")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(order.first(), Some(&"101"));
    assert_eq!(order.last(), Some(&"x-1"));
    assert!(!last.body.contains("rel=\"next\""));

    let failed = get(&console, "/tasks?service=render&user=carol&status=failed").await;
    let shown: Vec<&str> = failed
        .body
        .split("<a href=\"/tasks/")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(shown, ["30", "60", "90", "120"]);
    let bad = get(&console, "/tasks?status=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let users = get(&console, "/services/render/users").await;
    assert!(
        users.body.contains("2 users have tasks in"),
        "{}",
        users.body
    );
    assert!(users
        .body
        .contains(r#"href="/tasks?service=render&amp;user=carol""#));
}

#[tokio::test]
async fn the_overview_counts_match_the_store() {
    let (console, repo) = memory(config(false));
    assert!(get(&console, "/").await.body.contains("Counting the tasks"));
    for i in 1..=7 {
        plant(
            repo.as_ref(),
            &i.to_string(),
            if i <= 4 { "render" } else { "etl" },
            "alice",
        )
        .await;
    }
    repo.set_status("2", TaskStatus::Running, None)
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();
    let page = get(&console, "/").await;
    assert!(
        page.body.contains("7 tasks in 2 services, counted"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<a href="/tasks?service=render&amp;status=pending">3</a>"#),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(r#"<a href="/tasks?service=render&amp;status=running">1</a>"#));
    assert!(page
        .body
        .contains(r#"<a href="/tasks?service=etl&amp;status=pending">3</a>"#));
    // The most recently updated comes first.
    let recent = &page.body[page.body.find("Most recently updated").unwrap()..];
    assert!(recent.find("/tasks/2\"").unwrap() < recent.find("/tasks/7\"").unwrap());
}

/// The next server-sent event of `body`, as its text.
async fn next_event(body: &mut Body) -> String {
    let mut text = String::new();
    while !text.contains("\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    text
}

/// The live log of `id` from its first entry.
async fn open_events(console: &Console, id: &str) -> axum::http::Response<Body> {
    let request = Request::get(format!("/tasks/{id}/events?from=0"))
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    tower::ServiceExt::oneshot(console.router(), request)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_live_log_streams_new_entries_until_the_task_ends() {
    let (console, repo) = memory(config(false));
    plant(repo.as_ref(), "3", "render", "alice").await;
    repo.append_log("3", "first").await.unwrap();
    let response = open_events(&console, "3").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = next_event(&mut body).await;
    assert!(
        first.contains("event: log\nid: 1\ndata: {\"at\":"),
        "{first}"
    );
    assert!(first.contains("\"message\":\"first\""), "{first}");
    assert!(next_event(&mut body)
        .await
        .contains("event: status\ndata: pending"));
    repo.append_log("3", SCRIPT).await.unwrap();
    let second = next_event(&mut body).await;
    assert!(second.contains("id: 2\n"), "{second}");
    assert!(
        second.contains(r#""message":"<script>alert(1)</script>""#),
        "{second}"
    );
    repo.set_status("3", TaskStatus::Completed, Some("done"))
        .await
        .unwrap();
    assert!(next_event(&mut body).await.contains("\"message\":\"done\""));
    assert!(next_event(&mut body)
        .await
        .contains("event: status\ndata: completed"));
    assert!(next_event(&mut body)
        .await
        .contains("event: end\ndata: completed"));
    let end = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream closes after the final status");

    // A reconnecting EventSource resumes after its Last-Event-ID.
    let request = Request::get("/tasks/3/events?from=0")
        .header("host", HOST)
        .header("last-event-id", "2")
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(console.router(), request)
        .await
        .unwrap();
    let mut body = response.into_body();
    let resumed = next_event(&mut body).await;
    assert!(
        resumed.contains("id: 3\n") && resumed.contains("\"message\":\"done\""),
        "{resumed}"
    );
}

#[tokio::test]
async fn metrics_parse_and_have_the_expected_families() {
    let Some((server, repo)) =
        common::redis_with(&["--notify-keyspace-events", "Ex"], |s| s.url()).await
    else {
        return;
    };
    let listener = Arc::new(
        Janitor::start(repo.clone(), JanitorOptions::default())
            .await
            .unwrap(),
    );
    let console = Console::new(
        config(false),
        Backend::redis(repo.clone()).with_janitor(listener.clone()),
    )
    .unwrap();
    plant(&repo, "1", "render", "alice").await;
    plant(&repo, "2", "render", "bob").await;
    plant(&repo, "3", "etl", "bob").await;
    repo.set_status("3", TaskStatus::Failed, None)
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();
    assert_eq!(get(&console, "/tasks/1").await.status, StatusCode::OK);
    assert_eq!(
        get(&console, "/tasks/99").await.status,
        StatusCode::NOT_FOUND
    );

    let reply = get(&console, "/metrics").await;
    assert!(reply
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    let lines = reply.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the metrics parse");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value(
            "task_state_tasks",
            &[("service", "render"), ("status", "pending")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            "task_state_tasks",
            &[("service", "etl"), ("status", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "task_state_tasks",
            &[("service", "etl"), ("status", "running")]
        ),
        Some(0.0)
    );
    assert_eq!(value("task_state_tasks_unreadable", &[]), Some(0.0));
    assert!(
        value(
            "task_state_repository_operations_total",
            &[("operation", "get"), ("outcome", "ok")]
        )
        .unwrap()
            >= 2.0
    );
    assert!(
        value(
            "task_state_repository_operations_total",
            &[("operation", "list_by_ids"), ("outcome", "ok")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(scrape
        .docs
        .contains_key("task_state_repository_operation_duration_seconds"));
    assert!(reply.body.contains(
        "task_state_repository_operation_duration_seconds_bucket{operation=\"get\",le=\"0.001\"}"
    ));
    for family in [
        "task_state_expiry_messages_total",
        "task_state_expiry_cleanups_total",
        "task_state_expiry_failures_total",
        "task_state_reconcile_runs_total",
        "task_state_tasks_refresh_timestamp_seconds",
    ] {
        assert!(
            value(family, &[]).is_some(),
            "{family} missing:\n{}",
            reply.body
        );
    }

    // An expired task: the listener cleans it, and its counters show on the next scrape.
    server.cli(&["PEXPIRE", "task:2", "1"]);
    let mut cleaned = 0.0;
    for _ in 0..200 {
        let body = get(&console, "/metrics").await.body;
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        cleaned = scrape
            .samples
            .iter()
            .find(|s| s.metric == "task_state_expiry_cleanups_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .unwrap_or(0.0);
        if cleaned >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cleaned, 1.0);
    // The overview shows the same counters.
    let overview = get(&console, "/").await.body;
    assert!(
        overview.contains("<dt>cleanups</dt><dd>1 (metadata missing: 0)</dd>"),
        "{overview}"
    );
    drop(console);
    Arc::try_unwrap(listener).unwrap().stop().await;
}

#[tokio::test]
async fn healthz_pings_both_pools_and_no_page_shows_the_password() {
    const PASSWORD: &str = "pw-9d1c4b7e";
    let log = LogCapture::default();
    let _guard = log.install();
    let Some((mut server, repo)) = common::redis_with(&["--requirepass", PASSWORD], |s| {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", s.port())
    })
    .await
    else {
        return;
    };
    let console = Console::new(config(true), Backend::redis(repo.clone())).unwrap();
    plant(&repo, "1", "render", "alice").await;
    console.refresh_counts().await.unwrap();
    let ok = get(&console, "/healthz").await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "ok\n"));
    let mut seen = Vec::new();
    for path in ["/", "/tasks", "/tasks/1", "/check", "/metrics", "/login"] {
        seen.push(get(&console, path).await);
    }
    server.kill();
    let down = get(&console, "/healthz").await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body
    );
    assert!(
        down.body.starts_with("unavailable: the writer pool"),
        "{}",
        down.body
    );
    seen.push(down);
    seen.push(get(&console, "/tasks/1").await);
    for reply in &seen {
        assert!(!reply.body.contains(PASSWORD), "{}", reply.body);
        for (name, value) in &reply.headers {
            assert!(!value.to_str().unwrap_or("").contains(PASSWORD), "{name}");
        }
    }
    assert!(!log.text().contains(PASSWORD), "{}", log.text());
}

#[tokio::test]
async fn the_check_page_runs_the_check_and_shows_its_table() {
    let Some((console, repo, server)) = redis(config(false)).await else {
        return;
    };
    for i in 1..=30 {
        plant(&repo, &i.to_string(), "render", "alice").await;
    }
    server.cli(&["SREM", "index:tasks", "7"]);
    let cross = post(
        &console,
        "/check",
        "",
        &[("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let started = post(&console, "/check", "", &[]).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER);
    let mut page = get(&console, "/check").await;
    for _ in 0..300 {
        if !page.body.contains("check-progress") {
            break;
        }
        // While it runs the page reloads itself every second.
        assert!(page
            .body
            .contains(r#"<meta http-equiv="refresh" content="1">"#));
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = get(&console, "/check").await;
    }
    assert!(page.body.contains("inconsistent"), "{}", page.body);
    assert!(
        page.body.contains(
            "<td><code><bdi>index:tasks</bdi></code></td><td class=\"num\">1</td><td class=\"num\">0</td>"
        ),
        "{}",
        page.body
    );
    let overview = get(&console, "/").await;
    assert!(
        overview
            .body
            .contains("30 records, 1 missing and 0 extra index entries"),
        "{}",
        overview.body
    );

    let (memory_console, _) = memory(config(false));
    assert!(get(&memory_console, "/check")
        .await
        .body
        .contains("needs the Redis backend"));
    assert_eq!(
        post(&memory_console, "/check", "", &[]).await.status,
        StatusCode::NOT_IMPLEMENTED
    );
}

#[tokio::test]
async fn the_task_gauges_follow_the_store_from_count_to_count() {
    let (console, repo) = memory(config(false));
    plant(repo.as_ref(), "1", "render", "alice").await;
    plant(repo.as_ref(), "2", "etl", "alice").await;
    console.refresh_counts().await.unwrap();
    let before = get(&console, "/metrics").await.body;
    assert!(
        before.contains(r#"task_state_tasks{service="etl",status="pending"} 1"#),
        "{before}"
    );
    repo.delete("2").await.unwrap();
    repo.set_status("1", TaskStatus::Running, None)
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();
    let after = get(&console, "/metrics").await.body;
    assert!(!after.contains(r#"service="etl""#), "{after}");
    assert!(
        after.contains(r#"task_state_tasks{service="render",status="running"} 1"#),
        "{after}"
    );
    assert!(
        after.contains(r#"task_state_tasks{service="render",status="pending"} 0"#),
        "{after}"
    );
}

#[tokio::test]
async fn odd_task_ids_are_encoded_in_links_and_found_again() {
    let (console, repo) = memory(config(false));
    let id = "a/b <c>&d";
    plant(repo.as_ref(), id, "render", "alice").await;
    let list = get(&console, "/tasks").await;
    let href = "/tasks/a%2Fb%20%3Cc%3E%26d";
    assert!(
        list.body.contains(&format!(
            r#"<a href="{href}"><bdi>a/b &lt;c&gt;&amp;d</bdi></a>"#
        )),
        "{}",
        list.body
    );
    let page = get(&console, href).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<h1>Task a/b &lt;c&gt;&amp;d</h1>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(&format!(r#"data-events="{href}/events""#)));
}

#[tokio::test]
async fn sign_in_never_leads_to_another_site_nor_fails_after_opening_a_session() {
    let (console, _) = memory(config(true));
    // Each of these is `//evil.com` to a browser (tabs and newlines are dropped, a
    // backslash is a slash), or not a valid `Location` at all.
    for away in [
        "%2F%09%2Fevil.com",
        "%2F%0A%2Fevil.com",
        "%2F%0D%2Fevil.com",
        "%2F%5C%2Fevil.com",
        "%09%2F%2Fevil.com",
        "%2F%00%2Fevil.com",
        "%2F%C3%A9",
    ] {
        let reply = post(
            &console,
            "/login",
            &format!("token={ALICE}&next={away}"),
            &[],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{away}: {}",
            reply.body
        );
        assert_eq!(reply.header("location"), "/", "{away}");
        let form = get(&console, &format!("/login?next={away}")).await;
        assert!(!form.body.contains(r#"name="next""#), "{away}");
    }
}

#[tokio::test]
async fn task_ids_and_services_of_dots_only_are_linked_and_found_again() {
    let (console, repo) = memory(config(false));
    for (id, href) in [
        (".", "/tasks/%3A."),
        ("..", "/tasks/%3A.."),
        ("...", "/tasks/%3A..."),
    ] {
        plant(repo.as_ref(), id, "..", "alice").await;
        let list = get(&console, "/tasks").await;
        assert!(
            list.body
                .contains(&format!(r#"<a href="{href}"><bdi>{id}</bdi></a>"#)),
            "{id}: {}",
            list.body
        );
        let page = get(&console, href).await;
        assert_eq!(page.status, StatusCode::OK, "{id}: {}", page.body);
        assert!(page.body.contains(&format!("<h1>Task {id}</h1>")), "{id}");
        assert!(page
            .body
            .contains(&format!(r#"data-events="{href}/events""#)));
    }
    // An id that merely holds dots keeps its plain link.
    plant(repo.as_ref(), "a..b", "render", "alice").await;
    assert_eq!(get(&console, "/tasks/a..b").await.status, StatusCode::OK);
    console.refresh_counts().await.unwrap();
    let overview = get(&console, "/").await;
    assert!(
        overview.body.contains(r#"href="/services/%3A../users""#),
        "{}",
        overview.body
    );
    let users = get(&console, "/services/%3A../users").await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(
        users.body.contains("<strong><bdi>..</bdi></strong>"),
        "{}",
        users.body
    );
}

#[tokio::test]
async fn unknown_members_of_the_result_are_shown_like_unknown_fields() {
    let (console, repo) = memory(config(false));
    let mut record = TaskRecord::new("7", "render", "alice", TaskStatus::Failed);
    record.result.launcher_output = Some("out".to_owned());
    record.result.extra =
        serde_json::from_str(r#"{"exit_code":137,"signal":"<KILL>","big":123456789012345678901}"#)
            .unwrap();
    record.extra = serde_json::from_str(r#"{"shard":3}"#).unwrap();
    repo.save(record).await.unwrap();
    let page = get(&console, "/tasks/7").await;
    assert_eq!(page.status, StatusCode::OK);
    let at = page
        .body
        .find("Other members of the result")
        .unwrap_or_else(|| panic!("no unknown result members shown: {}", page.body));
    let shown = &page.body[at..];
    assert!(shown.contains("&quot;exit_code&quot;: 137"), "{shown}");
    assert!(
        shown.contains("&quot;signal&quot;: &quot;&lt;KILL&gt;&quot;"),
        "{shown}"
    );
    assert!(shown.contains("123456789012345678901"), "{shown}");
    assert!(page.body.contains("&quot;shard&quot;: 3"));
    // Without unknown members, no empty section.
    plant(repo.as_ref(), "8", "render", "alice").await;
    assert!(!get(&console, "/tasks/8")
        .await
        .body
        .contains("Other members of the result"));
}

/// `html` without the values of its `value` attributes.
fn without_values(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find(" value=\"") {
        out.push_str(&rest[..at]);
        rest = &rest[at + " value=\"".len()..];
        rest = &rest[rest.find('"').map_or(rest.len(), |end| end + 1)..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn bidirectional_overrides_and_controls_are_isolated_and_shown_as_escapes() {
    let (console, repo) = memory(config(false));
    let record = TaskRecord::new(
        "7\u{202e}",
        "render\u{2066}",
        "u\u{202e}evil",
        TaskStatus::Running,
    )
    .with_parameters(
        serde_json::from_str::<task_state_core::RawMap>("{\"file\":\"exe\u{202e}gnp.exe\"}")
            .unwrap(),
    );
    repo.save(record).await.unwrap();
    repo.append_log("7\u{202e}", "saved exe\u{202e}gnp.exe\r\u{1b}[2J")
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();
    let mark = r#"<span class="ctl" title="U+202E">\u{202e}</span>"#;
    for path in [
        "/",
        "/tasks",
        "/tasks/7%E2%80%AE",
        "/services/render%E2%81%A6/users",
    ] {
        let page = get(&console, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        // Form fields keep the value as it is, to filter by it; the text shows none.
        let text = without_values(&page.body);
        for hidden in ['\u{202e}', '\u{2066}', '\r', '\u{1b}'] {
            assert!(
                !text.contains(hidden),
                "{path} shows {hidden:?} as is: {text}"
            );
        }
        assert!(
            page.body
                .contains(r#"<bdi>render<span class="ctl" title="U+2066">\u{2066}</span></bdi>"#),
            "{path}: {}",
            page.body
        );
    }
    let task = get(&console, "/tasks/7%E2%80%AE").await;
    assert!(
        task.body.contains(&format!("<bdi>u{mark}evil</bdi>")),
        "{}",
        task.body
    );
    assert!(task.body.contains(&format!("<bdi>saved exe{mark}gnp.exe")));
    assert!(task
        .body
        .contains(r#"<span class="ctl" title="U+001B">\u{1b}</span>[2J"#));
    assert!(
        task.body.contains(&format!("exe{mark}gnp.exe&quot;")),
        "parameters"
    );
    assert!(task.body.contains(r"<h1>Task 7\u{202e}</h1>"));
}

#[tokio::test]
async fn a_console_reachable_from_other_machines_needs_its_hosts_named() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let (console, _) = memory(config(false));
    let e = console
        .serve(listener, std::future::ready(()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let message = e.to_string();
    assert!(message.contains("--allowed-host"), "{message}");
    assert!(message.contains("--allow-any-host"), "{message}");
    assert!(message.contains("not a loopback address"), "{message}");

    // Named hosts, or any host asked for by name: it serves (and stops at once here).
    let mut named = config(false);
    named.allowed_hosts = vec![HOST.to_owned()];
    let mut any = config(false);
    any.allow_any_host = true;
    for config in [named, any] {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let (console, _) = memory(config);
        console
            .serve(listener, std::future::ready(()))
            .await
            .unwrap();
    }
    // Loopback answers any host, as before.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (console, _) = memory(config(false));
    console
        .serve(listener, std::future::ready(()))
        .await
        .unwrap();
}

#[tokio::test]
async fn ten_thousand_services_keep_metrics_and_the_overview_small() {
    let (console, repo) = memory(config(false));
    // Service s00000 has the most tasks, then s00001, ...; the 9,900 smallest have one.
    let mut id = 0;
    for service in 0..10_000 {
        let tasks = if service < 100 {
            3 + (100 - service)
        } else {
            1
        };
        for _ in 0..tasks {
            id += 1;
            let record = TaskRecord::new(
                id.to_string(),
                format!("s{service:05}"),
                "alice",
                TaskStatus::Pending,
            );
            repo.save(record).await.unwrap();
        }
    }
    repo.set_status("1", TaskStatus::Running, None)
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();

    let metrics = get(&console, "/metrics").await.body;
    assert!(
        metrics.len() < 200_000,
        "/metrics is {} bytes",
        metrics.len()
    );
    let families =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let tasks: Vec<_> = families
        .samples
        .iter()
        .filter(|s| s.metric == "task_state_tasks")
        .collect();
    let services: std::collections::BTreeSet<&str> = tasks
        .iter()
        .map(|s| s.labels.get("service").unwrap())
        .collect();
    assert_eq!(services.len(), 101, "the top 100 and :other");
    assert!(services.contains("s00000") && services.contains("s00099"));
    assert!(!services.contains("s00100"));
    let value = |service: &str, status: &str| {
        tasks
            .iter()
            .find(|s| {
                s.labels.get("service") == Some(service) && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                ref other => panic!("{other:?}"),
            })
    };
    assert_eq!(value(":other", "pending"), Some(9_900.0));
    assert_eq!(value("s00000", "pending"), Some(102.0));
    assert_eq!(value("s00000", "running"), Some(1.0));
    assert!(
        metrics.contains("task_state_tasks_services 10000"),
        "services gauge"
    );
    // Every task counted once, named or in :other.
    let total: f64 = tasks
        .iter()
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, f64::from(id));

    // The overview shows one page of services, with a link to the next.
    let overview = get(&console, "/").await.body;
    assert!(
        overview.len() < 100_000,
        "the overview is {} bytes",
        overview.len()
    );
    assert!(overview.contains("10000 services"), "{overview}");
    assert_eq!(
        overview.matches("/users\"").count(),
        50,
        "one page of services"
    );
    assert!(overview.contains(r#"<a href="/?page=2" rel="next">"#));
    let last = get(&console, "/?page=200").await.body;
    assert!(last.contains("s09999") && !last.contains("rel=\"next\""));
    assert!(last.contains(r#"<a href="/?page=199" rel="prev">"#));
    // The task list suggests the top services only.
    let list = get(&console, "/tasks?service=s00000").await.body;
    assert_eq!(list.matches("<option value=\"s").count(), 100);
}

/// The pending tasks of each service in `task_state_tasks` after a count, by label.
async fn pending_series(console: &Console) -> Vec<(String, String)> {
    console.refresh_counts().await.unwrap();
    let metrics = get(console, "/metrics").await.body;
    let prefix = "task_state_tasks{service=\"";
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split_once("\",status=\"pending\"} "))
        .map(|(service, n)| (service.to_owned(), n.to_owned()))
        .collect()
}

#[tokio::test]
async fn services_leaving_the_top_move_their_series_to_other() {
    let mut config = config(false);
    config.top_services = 1;
    let (console, repo) = memory(config);
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    for (id, service) in [("1", "render"), ("2", "render"), ("3", "etl")] {
        plant(repo.as_ref(), id, service, "alice").await;
    }
    assert_eq!(
        pending_series(&console).await,
        pairs(&[(":other", "1"), ("render", "2")])
    );
    for id in ["4", "5"] {
        plant(repo.as_ref(), id, "etl", "alice").await;
    }
    assert_eq!(
        pending_series(&console).await,
        pairs(&[(":other", "2"), ("etl", "3")])
    );
    repo.delete("1").await.unwrap();
    repo.delete("2").await.unwrap();
    assert_eq!(pending_series(&console).await, pairs(&[("etl", "3")]));
}

/// A console (one status scan at a time) on 100,000 pending tasks: a filter on `completed`
/// reads them all, 100 a batch, and the first batch read waits until the test releases it.
struct GatedScan {
    console: Console,
    batches: Arc<std::sync::atomic::AtomicUsize>,
    in_scan: Option<std::sync::mpsc::Receiver<()>>,
    release: std::sync::mpsc::Sender<()>,
}

impl GatedScan {
    fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let batches = Arc::new(AtomicUsize::new(0));
        let (entered, in_scan) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let mut mock = MockTaskRepository::new();
        mock.expect_list_ids().returning(|_| Ok(ids(100_000)));
        let counter = batches.clone();
        mock.expect_list_by_ids().returning(move |ids| {
            if counter.fetch_add(1, SeqCst) == 0 {
                entered.send(()).unwrap();
                released.lock().unwrap().recv().unwrap();
            }
            Ok(pending_tasks(ids))
        });
        let mut config = config(false);
        config.max_status_scans = 1;
        let console = Console::new(config, Backend::any(Arc::new(mock))).unwrap();
        GatedScan {
            console,
            batches,
            in_scan: Some(in_scan),
            release,
        }
    }

    /// Starts a status scan, returning once its first batch is being read.
    async fn start_scan(&mut self) -> tokio::task::JoinHandle<Reply> {
        let console = self.console.clone();
        let scan = tokio::spawn(async move { get(&console, "/tasks?status=completed").await });
        self.wait_in_scan().await;
        scan
    }

    /// Returns once the first batch is being read.
    async fn wait_in_scan(&mut self) {
        let in_scan = self.in_scan.take().unwrap();
        tokio::task::spawn_blocking(move || in_scan.recv().unwrap())
            .await
            .unwrap();
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }

    fn batches(&self) -> usize {
        self.batches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_scans_and_sorted_lists_are_bounded_and_end_when_their_client_leaves() {
    let mut gated = GatedScan::new();
    let console = gated.console.clone();

    let first = gated.start_scan().await;
    // The one scan is taken: the next is told to come back, and reads nothing.
    let busy = get(&console, "/tasks?status=completed").await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.body
    );
    assert_eq!(busy.header("retry-after"), "5");
    assert!(busy.body.contains("try again"), "{}", busy.body);
    // Sorting by a column other than the id reads every record too: it waits its turn.
    let sorted = get(&console, "/tasks?sort=-updated").await;
    assert_eq!(sorted.status, StatusCode::SERVICE_UNAVAILABLE);

    // The first client leaves (the server drops its handler's future): its scan stops
    // after the batch it was reading, and its permit is free again.
    first.abort();
    gated.release();
    assert!(first.await.unwrap_err().is_cancelled());
    let after_first = gated.batches();
    let next = get(&console, "/tasks?status=pending").await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(
        after_first, 1,
        "the scan stopped after the batch it was reading"
    );
    let sorted = get(&console, "/tasks?sort=-updated&from=50").await;
    assert_eq!(sorted.status, StatusCode::OK, "{}", sorted.body);
    assert!(
        sorted.body.contains("Tasks 51–100 of 100000"),
        "{}",
        sorted.body
    );
}

#[tokio::test]
async fn a_status_the_last_count_did_not_find_is_not_scanned_unless_asked() {
    let (console, repo) = memory(config(false));
    for id in ["1", "2", "3"] {
        plant(repo.as_ref(), id, "render", "alice").await;
    }
    console.refresh_counts().await.unwrap();
    let reads = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"task_state_repository_operations_total{operation="list_by_ids",outcome="ok"} "#,
                )
            })
            .unwrap_or("0")
            .parse::<u64>()
            .unwrap()
    };
    let before = reads(&get(&console, "/metrics").await.body);
    // A task completes after the count: the count does not know it yet.
    repo.set_status("2", TaskStatus::Completed, None)
        .await
        .unwrap();
    let page = get(&console, "/tasks?service=render&status=completed").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("found no completed tasks here, so the index was not read"),
        "{}",
        page.body
    );
    assert_eq!(
        reads(&get(&console, "/metrics").await.body),
        before,
        "no record read"
    );
    let scan = "/tasks?service=render&amp;status=completed&amp;scan=1";
    assert!(
        page.body.contains(&format!(r#"<a href="{scan}">"#)),
        "{}",
        page.body
    );
    let scanned = get(&console, &scan.replace("&amp;", "&")).await;
    assert!(
        scanned.body.contains(r#"<a href="/tasks/2">"#),
        "{}",
        scanned.body
    );
    assert!(reads(&get(&console, "/metrics").await.body) > before);
    // A status the count found says how many it found.
    let pending = get(&console, "/tasks?status=pending").await;
    assert!(pending.body.contains(" found 3."), "{}", pending.body);
}

#[tokio::test]
async fn long_lines_fold_statuses_colour_times_read_as_ago_and_lists_reload() {
    let (console, repo) = memory(config(false));
    plant(repo.as_ref(), "1", "render", "alice").await;
    repo.set_status("1", TaskStatus::Running, None)
        .await
        .unwrap();
    let line = format!("{}{}", "a".repeat(1_000), "b".repeat(99_000));
    repo.append_log("1", &line).await.unwrap();
    plant(repo.as_ref(), "2", "render", "alice").await;
    repo.set_status("2", TaskStatus::Completed, None)
        .await
        .unwrap();
    console.refresh_counts().await.unwrap();

    let task = get(&console, "/tasks/1").await.body;
    // The first 1,000 characters, then the rest behind "show more".
    let folded = format!(
        "<bdi>{}</bdi><details class=\"more\"><summary>show more (99000 more characters)</summary><bdi>b",
        "a".repeat(1_000)
    );
    assert!(task.contains(&folded), "{task}");
    assert!(
        task.contains(r#"<span id="status" class="status status-running">running</span>"#),
        "{task}"
    );
    assert!(task.contains("</time> <span class=\"ago\">("), "{task}");
    assert!(
        task.contains(r#"<dd id="duration">"#) && task.contains(" so far</dd>"),
        "{task}"
    );
    let done = get(&console, "/tasks/2").await.body;
    assert!(done.contains(r#"<dd id="duration">took "#), "{done}");

    let refresh = r#"<meta http-equiv="refresh" content="30">"#;
    for path in ["/", "/tasks", "/tasks?service=render"] {
        let page = get(&console, path).await.body;
        assert!(page.contains(refresh), "{path}");
        assert!(page.contains("This page reloads every 30 s."), "{path}");
        assert!(page.contains("<time datetime=\""), "{path}: times");
        assert!(page.contains("<span class=\"ago\">("), "{path}: times");
    }
    // A status filter may read the whole index: it does not reload by itself.
    assert!(!get(&console, "/tasks?status=running")
        .await
        .body
        .contains(refresh));
}

/// The repository's `get` calls so far, from `/metrics`.
async fn gets(console: &Console) -> u64 {
    get(console, "/metrics")
        .await
        .body
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"task_state_repository_operations_total{operation="get",outcome="ok"} "#,
            )
        })
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn viewers_of_one_task_share_one_follower_and_streams_are_bounded() {
    let mut config = config(false);
    // One read each time the follower starts, none while the test runs.
    config.live_poll = Duration::from_secs(3_600);
    config.max_live_streams = 20;
    let (console, repo) = memory(config);
    plant(repo.as_ref(), "3", "render", "alice").await;
    repo.append_log("3", "first").await.unwrap();
    // A viewer that has had the first line.
    let viewer = || async {
        let response = open_events(&console, "3").await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        assert!(next_event(&mut body)
            .await
            .contains("\"message\":\"first\""));
        body
    };
    let mut bodies = Vec::new();
    for _ in 0..20 {
        bodies.push(viewer().await);
    }
    assert_eq!(
        gets(&console).await,
        1,
        "20 viewers, one read of the record"
    );

    // Past the bound: refused, saying why, with nothing read.
    let refused = get(&console, "/tasks/3/events").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after"), "30");
    assert!(
        refused.body.contains("already streams 20 live logs"),
        "{}",
        refused.body
    );
    // A viewer leaves: its place is free again, and it joins the same follower.
    bodies.pop();
    bodies.push(viewer().await);
    assert_eq!(gets(&console).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_scan_stops_when_its_client_closes_the_connection() {
    use std::io::Write;
    let mut gated = GatedScan::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        gated
            .console
            .clone()
            .serve(listener, std::future::pending()),
    );
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        client,
        "GET /tasks?status=completed HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    )
    .unwrap();
    gated.wait_in_scan().await;
    drop(client);
    gated.release();
    // Once the server has seen the connection close, the scan's place is free again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(&gated.console, "/tasks?status=pending").await.status != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the scan of a closed connection still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pending page read one batch. The closed connection's scan stops when the runtime
    // next tells the server of the socket's end (a few dozen batches on), far from the
    // 1,000 batches of the whole index that it would read to the end.
    let read = gated.batches() - 1;
    assert!(
        read < 500,
        "the closed connection's scan read {read} batches"
    );
}

/// The ids the task list's table links to, in order.
fn listed(body: &str) -> Vec<&str> {
    let table = &body[body.find("<tbody>").expect("a table")..];
    table
        .split("<a href=\"/tasks/")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect()
}

#[tokio::test]
async fn the_task_list_sorts_by_any_column_and_searches_by_id_prefix() {
    use task_state_core::jiff::{Timestamp, ToSpan};
    use task_state_core::{PriorityLevel, TaskTime, Zone};
    let mut small_pages = config(false);
    small_pages.page_size = 5;
    let (console, repo) = memory(small_pages);
    let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for i in 1..=12i64 {
        let service = if i % 2 == 0 { "b-svc" } else { "a-svc" };
        // Id 1 is the newest, id 12 the oldest.
        let created = TaskTime::from_timestamp(base + (13 - i).minutes(), &Zone::utc());
        let mut record = TaskRecord::new_at(
            i.to_string(),
            service,
            "alice",
            TaskStatus::Pending,
            created,
        );
        if i % 4 == 0 {
            record = record.with_priority(PriorityLevel::High);
        }
        repo.save(record).await.unwrap();
    }
    let page = |path: &'static str| {
        let console = console.clone();
        async move {
            let reply = get(&console, path).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
            reply.body
        }
    };
    let first = page("/tasks").await;
    assert_eq!(listed(&first), ["1", "2", "3", "4", "5"]);
    // Each heading sorts by its column; the column sorted by is marked and turns around.
    assert!(
        first.contains(r#"<th scope="col" aria-sort="ascending"><a href="/tasks?sort=-id" class="sort">ID <span class="arrow">▲</span></a></th>"#),
        "{first}"
    );
    assert!(first.contains(r#"href="/tasks?sort=service""#), "{first}");
    assert!(first.contains(r#"href="/tasks?sort=-updated""#), "{first}");

    assert_eq!(
        listed(&page("/tasks?sort=-id").await),
        ["12", "11", "10", "9", "8"]
    );
    let next = page("/tasks?sort=-id&after=8").await;
    assert_eq!(listed(&next), ["7", "6", "5", "4", "3"]);
    assert!(
        next.contains(r#"href="/tasks?sort=-id&amp;after=3" rel="next""#),
        "{next}"
    );

    // Another column: every record is read, the page is cut from the sorted whole.
    let by_service = page("/tasks?sort=service").await;
    assert_eq!(listed(&by_service), ["1", "3", "5", "7", "9"]);
    assert!(
        by_service.contains("Tasks 1–5 of 12 (every record"),
        "{by_service}"
    );
    assert!(by_service.contains(r#"href="/tasks?sort=service&amp;from=5" rel="next""#));
    assert!(
        !by_service.contains("http-equiv=\"refresh\""),
        "a sorted list reads every record: no reload"
    );
    let second = page("/tasks?sort=service&from=5").await;
    assert_eq!(listed(&second), ["11", "2", "4", "6", "8"]);
    assert!(
        second.contains(r#"href="/tasks?sort=service" rel="prev""#),
        "{second}"
    );
    assert_eq!(
        listed(&page("/tasks?sort=-created").await),
        ["1", "2", "3", "4", "5"]
    );
    assert_eq!(
        listed(&page("/tasks?sort=created").await),
        ["12", "11", "10", "9", "8"]
    );
    assert_eq!(
        listed(&page("/tasks?sort=-priority").await),
        ["4", "8", "12", "1", "2"]
    );

    // The id prefix narrows the index's ids before anything is read; it keeps the order.
    let prefixed = page("/tasks?id=1").await;
    assert_eq!(listed(&prefixed), ["1", "10", "11", "12"]);
    assert!(
        prefixed.contains("Tasks 1–4 of 4 in the index."),
        "{prefixed}"
    );
    assert!(prefixed.contains(r#"name="id" type="search" value="1""#));
    assert_eq!(
        listed(&page("/tasks?id=1&sort=-id").await),
        ["12", "11", "10", "1"]
    );
    assert_eq!(
        listed(&page("/tasks?id=1&service=b-svc&sort=-created").await),
        ["10", "12"]
    );
    assert!(listed(&page("/tasks?id=nothing").await).is_empty());

    let bad = get(&console, "/tasks?sort=colour").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("cannot sort by"), "{}", bad.body);
}

/// The statuses of tasks `ids`, `None` for a deleted one.
async fn statuses(repo: &dyn TaskRepository, ids: &[&str]) -> Vec<Option<TaskStatus>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(repo.get(id).await.unwrap().map(|r| r.status));
    }
    out
}

#[tokio::test]
async fn bulk_actions_confirm_the_count_and_need_the_session_and_its_csrf_token() {
    use TaskStatus::*;
    let (console, repo) = memory(config(true));
    for i in 1..=6 {
        plant(repo.as_ref(), &i.to_string(), "render", "alice").await;
    }
    for id in ["7", "8"] {
        plant(repo.as_ref(), id, "etl", "bob").await;
    }
    repo.set_status("2", Completed, None).await.unwrap();
    let render = ["1", "2", "3", "4", "5", "6"];

    // Without a session the confirmation leads to the sign-in, and back.
    let anonymous = get(&console, "/bulk/cancel?service=render").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.header("location"),
        "/login?next=%2Fbulk%2Fcancel%3Fservice%3Drender"
    );
    let (cookie, csrf) = sign_in(&console, ALICE).await;
    let session = [("cookie", cookie.as_str())];

    // The list offers both on a filter, never on every task.
    let list = get_with(&console, "/tasks?service=render&sort=-id", &session).await;
    assert!(
        list.body.contains(r#"href="/bulk/cancel?service=render""#),
        "{}",
        list.body
    );
    assert!(list.body.contains(r#"href="/bulk/delete?service=render""#));
    assert!(!get_with(&console, "/tasks", &session)
        .await
        .body
        .contains("/bulk/"));
    let everything = get_with(&console, "/bulk/delete", &session).await;
    assert_eq!(everything.status, StatusCode::BAD_REQUEST);
    assert!(
        everything.body.contains("needs a filter"),
        "{}",
        everything.body
    );
    assert_eq!(
        get_with(&console, "/bulk/erase?service=render", &session)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The confirmation names the count (the completed task is not cancellable) and changes
    // nothing.
    let confirm = get_with(&console, "/bulk/cancel?service=render", &session).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm
            .body
            .contains(r#"<p id="bulk-count"><strong>5 tasks</strong> match.</p>"#),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("Request cancellation of 5 tasks"));
    assert!(confirm.body.contains(r#"name="count" value="5""#));
    assert_eq!(
        statuses(repo.as_ref(), &render).await,
        [
            Some(Pending),
            Some(Completed),
            Some(Pending),
            Some(Pending),
            Some(Pending),
            Some(Pending)
        ]
    );

    let form = |count: usize, csrf: &str| format!("csrf={csrf}&count={count}&service=render");
    // A forged or missing CSRF token, or another site, is refused.
    for (body, origin) in [
        (form(5, "forged"), ORIGIN),
        ("count=5&service=render".to_owned(), ORIGIN),
        (form(5, &csrf), "http://evil.example"),
    ] {
        let refused = post(
            &console,
            "/bulk/cancel",
            &body,
            &[("cookie", &cookie), ("origin", origin)],
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            refused.body
        );
    }
    // A count that is not the store's any more: confirmed again, nothing done.
    let stale = post(&console, "/bulk/cancel", &form(4, &csrf), &session).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(
        stale.body.contains("(4 then, 5 now): nothing was done"),
        "{}",
        stale.body
    );
    assert_eq!(statuses(repo.as_ref(), &["1"]).await, [Some(Pending)]);

    let done = post(&console, "/bulk/cancel", &form(5, &csrf), &session).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body.contains("5 tasks cancellation requested."),
        "{}",
        done.body
    );
    assert_eq!(
        statuses(repo.as_ref(), &render).await,
        [
            Some(CancelRequested),
            Some(Completed),
            Some(CancelRequested),
            Some(CancelRequested),
            Some(CancelRequested),
            Some(CancelRequested)
        ]
    );
    let note = repo.get("4").await.unwrap().unwrap().logs;
    assert!(note
        .last()
        .unwrap()
        .ends_with("cancellation requested by alice in the console"));
    assert_eq!(statuses(repo.as_ref(), &["7"]).await, [Some(Pending)]);

    // Deleting the tasks of a filter with a status and an id prefix.
    let confirm = get_with(
        &console,
        "/bulk/delete?service=render&status=cancel_requested&id=",
        &session,
    )
    .await;
    assert!(
        confirm.body.contains("<strong>5 tasks</strong>"),
        "{}",
        confirm.body
    );
    let deleted = post(
        &console,
        "/bulk/delete",
        &format!("csrf={csrf}&count=5&service=render&status=cancel_requested"),
        &session,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(
        deleted.body.contains("5 tasks deleted."),
        "{}",
        deleted.body
    );
    assert_eq!(
        statuses(repo.as_ref(), &render).await,
        [None, Some(Completed), None, None, None, None]
    );
    assert_eq!(
        statuses(repo.as_ref(), &["7", "8"]).await,
        [Some(Pending), Some(Pending)]
    );
    let metrics = get(&console, "/metrics").await.body;
    assert!(
        metrics.contains(r#"task_state_console_writes_total{action="delete",outcome="ok"} 5"#),
        "{metrics}"
    );

    // Read-only, there is no bulk action at all.
    let (read_only, _) = memory(config(false));
    assert_eq!(
        get(&read_only, "/bulk/delete?service=etl").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_overview_charts_the_last_hours_throughput_in_svg() {
    use task_state_core::jiff::{Timestamp, ToSpan};
    use task_state_core::{TaskTime, Zone};
    let (console, repo) = memory(config(false));
    for id in ["1", "2", "3"] {
        plant(repo.as_ref(), id, "render", "alice").await;
    }
    for id in ["1", "2"] {
        repo.set_status(id, TaskStatus::Completed, None)
            .await
            .unwrap();
    }
    // Created two hours ago: outside the chart.
    let old = TaskTime::from_timestamp(Timestamp::now() - 2.hours(), &Zone::utc());
    repo.save(TaskRecord::new_at(
        "old",
        "render",
        "alice",
        TaskStatus::Pending,
        old,
    ))
    .await
    .unwrap();
    console.refresh_counts().await.unwrap();
    let overview = get(&console, "/").await;
    let body = &overview.body;
    assert!(body.contains("Throughput, the last hour"), "{body}");
    assert!(body.contains("3 created, "), "{body}");
    assert!(
        body.contains(" 2 finished (completed, failed or cancelled)"),
        "{body}"
    );
    assert!(body.contains(r#"<svg class="chart" role="img""#), "{body}");
    assert_eq!(body.matches(r#"<rect class="created""#).count(), 60);
    assert_eq!(body.matches(r#"<rect class="finished""#).count(), 60);
    // The minutes' numbers add up to the totals.
    let in_titles: u64 = body
        .split("<title>")
        .skip(1)
        .filter_map(|t| t.split(" UTC: ").nth(1))
        .map(|t| t.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(in_titles, 3);
    // No inline style nor script: the policy stays strict.
    assert!(!body.contains("style="), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert_eq!(
        overview.header("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
}

#[tokio::test]
async fn the_style_sheet_follows_the_systems_dark_mode() {
    let (console, _) = memory(config(false));
    let css = get(&console, "/static/console.css").await.body;
    let dark = &css[css
        .find("@media (prefers-color-scheme: dark)")
        .expect("a dark scheme")..];
    for var in [
        "--accent",
        "--danger",
        "--ok",
        "--muted",
        "background",
        "color",
    ] {
        assert!(dark.contains(var), "the dark scheme sets {var}");
    }
}

/// `field` of the `INFO` section `section` of `server` (`calls` of `cmdstat_get`, ...).
fn info_number(server: &RedisServer, section: &str, line: &str, field: &str) -> u64 {
    let info = server.cli(&["INFO", section]);
    let Some(values) = info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{line}:")))
    else {
        return 0;
    };
    values
        .split(',')
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .or_else(|| (field.is_empty()).then_some(values))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Reads events from `body` until one contains `wanted` (keep-alives go on meanwhile).
async fn event_with(body: &mut Body, wanted: &str) {
    event_within(body, wanted, Duration::from_secs(60)).await;
}

/// [`event_with`], waiting at most `limit`.
async fn event_within(body: &mut Body, wanted: &str, limit: Duration) {
    let reading = async { while !next_event(body).await.contains(wanted) {} };
    tokio::time::timeout(limit, reading)
        .await
        .unwrap_or_else(|_| panic!("no event with {wanted:?} within {limit:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_on_redis_reads_the_record_once_then_only_what_is_new() {
    use task_state_redis::testing::server_or_skip_with;
    use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
    // The console reads from a replica, where nothing else reads: its figures are the
    // follower's alone.
    let Some(primary) = server_or_skip_with(&[]) else {
        return;
    };
    let port = primary.port().to_string();
    let replica = server_or_skip_with(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(primary.url())
        .with_read_url(replica.url())
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    let mut config = config(false);
    config.live_poll = Duration::from_millis(100);
    let console = Console::new(config, Backend::redis(repo.clone())).unwrap();
    plant(&repo, "9", "render", "alice").await;
    repo.set_status("9", TaskStatus::Running, None)
        .await
        .unwrap();
    let long = format!("{}!", "x".repeat(100_000));
    repo.append_log("9", &long).await.unwrap();
    while replica
        .cli(&["STRLEN", "task:9"])
        .parse::<usize>()
        .unwrap_or(0)
        < 100_000
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.cli(&["CONFIG", "RESETSTAT"]);

    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut body = open_events(&console, "9").await.into_body();
        event_with(&mut body, "x!\"").await;
        viewers.push(body);
    }
    for i in 0..5 {
        repo.append_log("9", &format!("line {i}, \"quoted\""))
            .await
            .unwrap();
        for body in &mut viewers {
            event_with(body, &format!("line {i}, \\\"quoted\\\"")).await;
        }
    }
    repo.set_status("9", TaskStatus::Completed, Some("done"))
        .await
        .unwrap();
    for body in &mut viewers {
        event_with(body, "event: end").await;
    }
    let gets = info_number(&replica, "commandstats", "cmdstat_get", "calls");
    let ranges = info_number(&replica, "commandstats", "cmdstat_getrange", "calls");
    let out = info_number(&replica, "stats", "total_net_output_bytes", "");
    assert_eq!(gets, 1, "the record is read whole once");
    assert!(ranges >= 6, "then by its head and tail: {ranges} GETRANGEs");
    // Seven whole reads would be 700 KB.
    eprintln!("the follower: {gets} GET, {ranges} GETRANGE, {out} bytes out of Redis");
    assert!(out < 200_000, "{out} bytes out of the replica");
}

/// A writer appending back to back lands writes between the follower's read of the head and
/// that of the tail: those are read again, never taken for a record laid out otherwise and
/// read whole (the 500 viewers' bytes on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_writer_never_makes_the_follower_read_the_record_whole_again() {
    use task_state_console::{LogRead, LogTail};
    let Some((_server, repo)) = redis_with(&[], RedisServer::url).await else {
        return;
    };
    plant(&repo, "5", "render", "alice").await;
    let mut tail = LogTail::new("5");
    assert!(matches!(tail.read(&repo).await, Ok(LogRead::Whole(_))));
    let line = |i: usize| format!("{i}: {}", "y".repeat(2_000));
    let lines = 300;
    let writer = {
        let repo = repo.clone();
        tokio::spawn(async move {
            for i in 0..lines {
                repo.append_log("5", &line(i)).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut reads = 0;
    while seen.len() < lines {
        match tail.read(&repo).await.unwrap() {
            LogRead::Appended(entries, _) => seen.extend(entries),
            LogRead::Whole(_) => panic!("read whole after {reads} reads, {} lines", seen.len()),
            LogRead::Missing => panic!("missing after {reads} reads"),
        }
        reads += 1;
    }
    writer.await.unwrap();
    eprintln!("{lines} lines followed in {reads} reads");
    // Each entry is stored behind its timestamp.
    let messages: Vec<&str> = seen
        .iter()
        .map(|entry| entry.split_once(',').map_or(entry.as_str(), |(_, m)| m))
        .collect();
    assert_eq!(messages, (0..lines).map(line).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_wake_the_follower_instead_of_polling() {
    let Some((server, repo)) =
        redis_with(&["--notify-keyspace-events", "K$"], RedisServer::url).await
    else {
        return;
    };
    let mut config = config(false);
    config.live_poll = Duration::from_millis(20);
    // Without a notification the next read would come in an hour: the test would fail.
    config.live_fallback_poll = Duration::from_secs(3_600);
    let console = Console::new(config, Backend::redis(repo.clone())).unwrap();
    plant(&repo, "4", "render", "alice").await;
    repo.set_status("4", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    let mut body = open_events(&console, "4").await.into_body();
    event_with(&mut body, "started").await;
    server.cli(&["CONFIG", "RESETSTAT"]);
    for i in 0..3 {
        repo.append_log("4", &format!("woken {i}")).await.unwrap();
        event_with(&mut body, &format!("woken {i}")).await;
    }
    repo.set_status("4", TaskStatus::Completed, None)
        .await
        .unwrap();
    event_with(&mut body, "event: end").await;
    // One read (the head and the tail in a transaction) a write at the most, and one more for the
    // status that moved the log; none while nothing is written. (The writes' own `EXEC`s, of
    // the optimistic write path, each follow a `WATCH`, which the reads do not send.)
    let execs = info_number(&server, "commandstats", "cmdstat_exec", "calls");
    let reads = execs.saturating_sub(info_number(
        &server,
        "commandstats",
        "cmdstat_watch",
        "calls",
    ));
    assert!((1..=5).contains(&reads), "{reads} reads for 4 writes");
}

/// The resident memory of this process, in kB (Linux).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Issue 22's figure: 500 viewers of one task whose worker writes 100 KB lines. The bytes
/// out of Redis follow the lines written, not the viewers; the rates and the memory are
/// printed for docs/console.md (`--no-capture`), not asserted, since they depend on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_viewers_of_one_task_cost_redis_what_one_does() {
    use task_state_redis::testing::server_or_skip_with;
    use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
    let Some(primary) = server_or_skip_with(&[]) else {
        return;
    };
    let port = primary.port().to_string();
    let replica = server_or_skip_with(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(primary.url())
        .with_read_url(replica.url())
        // 500 streams in a debug build keep a busy machine's cores full: the worker's writes
        // must not time out meanwhile (a timed-out write is a lost reply, not a refusal).
        .with_command_timeout(Duration::from_secs(60))
        .with_connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    // The console's own poll (the tests' is shorter), so that the rate printed is the one
    // docs/console.md gives.
    let mut config = config(false);
    config.live_poll = task_state_console::ConsoleConfig::default().live_poll;
    let console = Console::new(config, Backend::redis(repo.clone())).unwrap();
    plant(&repo, "1", "render", "alice").await;
    repo.set_status("1", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    while !replica.cli(&["GET", "task:1"]).contains("started") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = rss_kb();
    replica.cli(&["CONFIG", "RESETSTAT"]);
    let started = std::time::Instant::now();
    let mut viewers = Vec::new();
    for _ in 0..500 {
        let mut body = open_events(&console, "1").await.into_body();
        // Each viewer waits from its start to the end of the whole run: ten appends of
        // growing 100 KB records while 500 streams poll, minutes on a machine busy with the
        // rest of the suite.
        viewers.push(tokio::spawn(async move {
            event_within(&mut body, "event: end", Duration::from_secs(300)).await;
        }));
    }
    let lines = 10;
    for i in 0..lines {
        let line = format!("{i}: {}", "x".repeat(100_000));
        repo.append_log("1", &line).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let during = rss_kb();
    repo.set_status("1", TaskStatus::Completed, None)
        .await
        .unwrap();
    for viewer in viewers {
        viewer.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    // The follower's commands; the replica also applies the writer's (SET, HSET, ...).
    let commands: u64 = [
        "cmdstat_get",
        "cmdstat_getrange",
        "cmdstat_strlen",
        "cmdstat_multi",
        "cmdstat_exec",
    ]
    .into_iter()
    .map(|c| info_number(&replica, "commandstats", c, "calls"))
    .sum();
    let out = info_number(&replica, "stats", "total_net_output_bytes", "");
    let gets = info_number(&replica, "commandstats", "cmdstat_get", "calls");
    eprintln!(
        "500 viewers, {lines} lines of 100 KB in {seconds:.1} s: {commands} commands ({:.1}/s), \
         {gets} GET, {out} bytes out ({:.0} KB/s); console RSS {before} kB before, {during} kB \
         with 500 streams",
        commands as f64 / seconds,
        out as f64 / seconds / 1000.0
    );
    // Once for all 500 (once more would be a fallback the layout allows, not a viewer's).
    assert!(
        (1..=2).contains(&gets),
        "{gets} whole reads for 500 viewers"
    );
    assert!(
        out < (lines + 2) * 110_000,
        "{out} bytes: each line is read once, not once a viewer"
    );
}
