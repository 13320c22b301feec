//! The console in a real browser: headless Chromium, driven through chromedriver, against a
//! private Redis. Without `chromium` or `chromedriver` the test fails, naming them, unless
//! `TASK_STATE_SKIP_MISSING_TOOLS` is set (never under `CI`).
//!
//! With `TASK_STATE_CONSOLE_SCREENSHOTS=DIR` it saves a screenshot of each page in `DIR`
//! (the ones in docs/console/ were made so).

mod common;

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use task_state_console::{Backend, Console, ConsoleConfig};
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{free_port, require_tool, RedisServer};
use task_state_redis::RedisTaskRepository;

/// How long anything in the browser may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Chromium's flags: headless, and nothing that reaches the network by itself.
const CHROMIUM_ARGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,1300",
    "--lang=en",
];

/// A chromedriver process on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = free_port().unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "args": CHROMIUM_ARGS }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A console serving on a loopback port in the background; its base URL.
async fn serve(config: ConsoleConfig, repo: &RedisTaskRepository) -> String {
    let console = Console::new(config, Backend::redis(repo.clone())).unwrap();
    console.refresh_counts().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(console.serve(listener, std::future::pending()));
    base
}

/// The text of the first element matching `css`, once `done` accepts it.
async fn wait_text(client: &Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if done(&text) {
                    return text;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never became what was expected; last: {last:?}");
}

/// The messages of the log table, in order.
async fn log_messages(client: &Client) -> Vec<String> {
    let cells = client
        .find_all(Locator::Css("#log tbody tr td:nth-child(2)"))
        .await
        .unwrap();
    let mut out = Vec::new();
    for cell in cells {
        out.push(cell.text().await.unwrap());
    }
    out
}

async fn wait_log(client: &Client, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let messages = log_messages(client).await;
        if done(&messages) {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "the log never became what was expected: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Chrome DevTools command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// Makes the page see `prefers-color-scheme` as `scheme` (`""`: the system's again).
async fn color_scheme(client: &Client, scheme: &str) {
    client
        .issue_cmd(Cdp {
            cmd: "Emulation.setEmulatedMedia",
            params: serde_json::json!({
                "features": [{ "name": "prefers-color-scheme", "value": scheme }]
            }),
        })
        .await
        .expect("emulate a colour scheme");
}

/// The computed background colour of the page.
async fn background(client: &Client) -> serde_json::Value {
    client
        .execute(
            "return getComputedStyle(document.documentElement).backgroundColor;",
            vec![],
        )
        .await
        .unwrap()
}

/// The ids in the task list's table, in order.
async fn listed_ids(client: &Client) -> Vec<String> {
    let ids = wait_text(client, "table.tasks tbody", |t| !t.is_empty()).await;
    ids.lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// Saves a screenshot as `name` when screenshots are asked for.
async fn screenshot(client: &Client, name: &str) {
    let Some(dir) = std::env::var_os("TASK_STATE_CONSOLE_SCREENSHOTS") else {
        return;
    };
    let png = client.screenshot().await.unwrap();
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
}

async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

/// Submits the sign-in form with `token`.
async fn sign_in_with(client: &Client, token: &str) {
    let form = client.form(Locator::Css("main form")).await.unwrap();
    form.set_by_name("token", token).await.unwrap();
    form.submit().await.unwrap();
}

/// The classes of the task page's status.
async fn status_class(client: &Client) -> serde_json::Value {
    client
        .execute(
            "return document.getElementById('status').className;",
            vec![],
        )
        .await
        .unwrap()
}

async fn no_alert(client: &Client) {
    assert!(
        client.get_alert_text().await.is_err(),
        "a dialog opened: a script from the store ran"
    );
    let pwned = client
        .execute("return window.pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(
        pwned,
        serde_json::json!(true),
        "an event handler from the store ran"
    );
}

async fn plant_store(repo: &RedisTaskRepository) {
    for i in 1..=12 {
        let (service, user) = match i % 3 {
            0 => ("etl", "bob"),
            1 => ("render", "alice"),
            _ => ("render", "carol"),
        };
        let record = TaskRecord::new(i.to_string(), service, user, TaskStatus::Pending)
            .with_parameters(
                serde_json::from_str::<task_state_core::RawMap>(
                    r#"{"frames":240,"scene":"forest, night"}"#,
                )
                .unwrap(),
            );
        repo.save(record).await.unwrap();
    }
    for id in ["2", "5"] {
        repo.set_status(id, TaskStatus::Running, Some("worker started"))
            .await
            .unwrap();
    }
    repo.set_status("3", TaskStatus::Completed, Some("done"))
        .await
        .unwrap();
    repo.set_status("6", TaskStatus::Failed, Some("out of memory"))
        .await
        .unwrap();
    repo.append_log("2", "<script>alert(1)</script>")
        .await
        .unwrap();
    repo.append_log("2", r#"<img src=x onerror="window.pwned=1">"#)
        .await
        .unwrap();
    repo.set_jobs("2", &["slurm-5001".to_owned()])
        .await
        .unwrap();
    let long = format!("rendered: {}", "frame ok; ".repeat(2_000));
    repo.append_log("8", &long).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let why = "the browser tests drive headless Chromium";
    if !require_tool("chromium", "--version", why)
        || !require_tool("chromedriver", "--version", why)
    {
        return;
    }
    let Some((server, repo)) = redis_with(&[], |s| s.url()).await else {
        return;
    };
    plant_store(&repo).await;
    let mut read_only = config(false);
    read_only.live_poll = Duration::from_millis(100);
    let mut writable = config(true);
    writable.live_poll = Duration::from_millis(100);
    let read_only = serve(read_only, &repo).await;
    let writable = serve(writable, &repo).await;
    let driver = Driver::start();
    let client = driver.browser().await;
    // The browser is closed whatever happens: killing chromedriver would leave it running.
    let outcome = AssertUnwindSafe(scenario(&client, &server, &repo, &read_only, &writable))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Every step, on the read-only console at `read_only` and the writable one at `writable`.
async fn scenario(
    client: &Client,
    server: &RedisServer,
    repo: &RedisTaskRepository,
    read_only: &str,
    writable: &str,
) {
    let client = client.clone();
    // The overview's counts are the store's.
    client.goto(&format!("{read_only}/")).await.unwrap();
    let counts = wait_text(&client, "#counts + p", |t| t.contains("tasks")).await;
    assert!(counts.starts_with("12 tasks"), "{counts}");
    let render_running = client
        .find(Locator::Css(
            r#"a[href="/tasks?service=render&status=running"]"#,
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(render_running, "2");
    // The last hour's throughput, drawn on the server.
    let totals = wait_text(&client, "#throughput-totals", |t| !t.is_empty()).await;
    assert!(totals.starts_with("■ 12 created, ■ 2 finished"), "{totals}");
    let bars = client
        .find_all(Locator::Css("svg.chart rect.created"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 60);
    screenshot(&client, "overview").await;

    // Dark mode follows the system's preference.
    assert_eq!(
        background(&client).await,
        serde_json::json!("rgb(255, 255, 255)")
    );
    color_scheme(&client, "dark").await;
    client.refresh().await.unwrap();
    wait_text(&client, "#throughput-totals", |t| !t.is_empty()).await;
    assert_eq!(
        background(&client).await,
        serde_json::json!("rgb(22, 24, 28)")
    );
    screenshot(&client, "overview-dark").await;
    client.goto(&format!("{read_only}/tasks/6")).await.unwrap();
    wait_text(&client, "#status", |t| t == "failed").await;
    screenshot(&client, "task-dark").await;
    color_scheme(&client, "").await;

    // Sorting by a heading, and the id search.
    client
        .goto(&format!("{read_only}/tasks?sort=-id"))
        .await
        .unwrap();
    assert_eq!(listed_ids(&client).await[..3], ["12", "11", "10"]);
    click(&client, Locator::LinkText("Service")).await;
    wait_text(&client, "th[aria-sort]", |t| t.starts_with("Service")).await;
    assert_eq!(
        listed_ids(&client).await,
        ["3", "6", "9", "12", "1", "2", "4", "5", "7", "8", "10", "11"]
    );
    screenshot(&client, "tasks-sorted").await;
    let form = client.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("id", "1").await.unwrap();
    form.submit().await.unwrap();
    wait_text(&client, "p.count", |t| t.contains("of 4")).await;
    assert_eq!(listed_ids(&client).await, ["12", "1", "10", "11"]);

    // Filters.
    client.goto(&format!("{read_only}/tasks")).await.unwrap();
    screenshot(&client, "tasks").await;
    let form = client.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("service", "render").await.unwrap();
    form.set_by_name("user", "carol").await.unwrap();
    form.submit().await.unwrap();
    let ids = wait_text(&client, "table.tasks tbody", |t| !t.is_empty()).await;
    let ids: Vec<&str> = ids
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["2", "5", "8", "11"]);
    client
        .goto(&format!(
            "{read_only}/tasks?service=render&user=carol&status=running"
        ))
        .await
        .unwrap();
    let ids = wait_text(&client, "table.tasks tbody", |t| !t.is_empty()).await;
    assert_eq!(ids.lines().count(), 2, "{ids}");

    // The users of a service.
    client
        .goto(&format!("{read_only}/services/render/users"))
        .await
        .unwrap();
    let users = wait_text(&client, "main ul", |t| !t.is_empty()).await;
    assert_eq!(users.lines().collect::<Vec<_>>(), ["alice", "carol"]);
    screenshot(&client, "users").await;

    // A 20,000-character line is folded after 1,000 behind "show more", which opens it.
    client.goto(&format!("{read_only}/tasks/8")).await.unwrap();
    let summary = wait_text(&client, "details.more summary", |t| !t.is_empty()).await;
    assert_eq!(summary, "show more (19010 more characters)");
    let open = "return document.querySelector('details.more').open;";
    assert_eq!(
        client.execute(open, vec![]).await.unwrap(),
        serde_json::json!(false)
    );
    screenshot(&client, "long-line").await;
    click(&client, Locator::Css("details.more summary")).await;
    assert_eq!(
        client.execute(open, vec![]).await.unwrap(),
        serde_json::json!(true)
    );
    let class = status_class(&client).await;
    assert_eq!(class, serde_json::json!("status status-pending"));

    // A task: the <script> line is text, and nothing from the store runs.
    client.goto(&format!("{read_only}/tasks/2")).await.unwrap();
    let messages = wait_log(&client, |m| m.len() == 3).await;
    assert_eq!(messages[1], "<script>alert(1)</script>");
    assert_eq!(messages[2], r#"<img src=x onerror="window.pwned=1">"#);
    no_alert(&client).await;
    assert!(
        client
            .find(Locator::LinkText("Request cancellation"))
            .await
            .is_err(),
        "writes are off"
    );
    wait_text(&client, "#live-state", |t| t == "following").await;

    // The live log: a line written now appears, escaped too, its right-to-left override
    // shown as an escape instead of turning `gnp.exe` into `exe.png`.
    repo.append_log(
        "2",
        "<script>alert(2)</script> frame 1 done: exe\u{202e}gnp.exe",
    )
    .await
    .unwrap();
    let messages = wait_log(&client, |m| m.len() == 4).await;
    assert_eq!(
        messages[3],
        "<script>alert(2)</script> frame 1 done: exe\\u{202e}gnp.exe"
    );
    let isolated = client
        .execute(
            "return document.querySelector('#log tbody tr:last-child bdi span.ctl').title;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(isolated, serde_json::json!("U+202E"));
    no_alert(&client).await;
    screenshot(&client, "task").await;

    // Paused, it shows nothing new; resumed, it catches up, each line once.
    click(&client, Locator::Id("pause")).await;
    wait_text(&client, "#live-state", |t| t == "paused").await;
    repo.append_log("2", "frame 2 done").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        log_messages(&client).await.len(),
        4,
        "a paused log must not grow"
    );
    click(&client, Locator::Id("pause")).await;
    let messages = wait_log(&client, |m| m.len() >= 5).await;
    assert_eq!(messages[4], "frame 2 done");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        log_messages(&client).await.len(),
        5,
        "no line is shown twice"
    );

    // The final status ends following.
    repo.set_status("2", TaskStatus::Completed, Some("worker finished"))
        .await
        .unwrap();
    wait_text(&client, "#status", |t| t == "completed").await;
    wait_text(&client, "#live-state", |t| t == "final status: completed").await;
    let class = status_class(&client).await;
    assert_eq!(
        class,
        serde_json::json!("status status-completed"),
        "the live status is coloured too"
    );
    assert_eq!(
        log_messages(&client).await.last().unwrap(),
        "worker finished"
    );

    // The consistency check, with a missing index entry.
    server.cli(&["SREM", "index:service:render", "8"]);
    client.goto(&format!("{read_only}/check")).await.unwrap();
    click(&client, Locator::Css("form button")).await;
    let summary = wait_text(&client, "main", |t| t.contains("Last result")).await;
    assert!(summary.contains("inconsistent"), "{summary}");
    assert!(summary.contains("index:service:render"), "{summary}");
    screenshot(&client, "check").await;

    // Writes on: without a session the action leads to the sign-in; a wrong token is
    // refused; with the token, cancellation is asked, confirmed and done.
    client.goto(&format!("{writable}/tasks/5")).await.unwrap();
    click(&client, Locator::LinkText("Request cancellation")).await;
    wait_text(&client, "h1", |t| t == "Sign in").await;
    screenshot(&client, "sign-in").await;
    sign_in_with(&client, "alice:not-the-right-secret").await;
    wait_text(&client, "p.error", |t| t.contains("not valid")).await;
    sign_in_with(&client, ALICE).await;
    // Signed in, the browser is back on the confirmation it asked for.
    wait_text(&client, "h1", |t| t == "Request cancellation").await;
    wait_text(&client, "footer", |t| t.contains("Signed in as alice")).await;
    screenshot(&client, "confirm").await;
    assert_eq!(
        repo.get("5").await.unwrap().unwrap().status,
        TaskStatus::Running,
        "the confirmation page changes nothing"
    );
    click(&client, Locator::Id("confirm")).await;
    wait_text(&client, "#status", |t| t == "cancel_requested").await;
    let record = repo.get("5").await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::CancelRequested);
    assert!(record
        .logs
        .last()
        .unwrap()
        .ends_with("cancellation requested by alice in the console"));
    wait_log(&client, |m| {
        m.last().is_some_and(|l| l.contains("requested by alice"))
    })
    .await;

    // The tasks of a filter, cancelled at once after a confirmation naming their number.
    client
        .goto(&format!("{writable}/tasks?service=etl&status=pending"))
        .await
        .unwrap();
    click(&client, Locator::LinkText("Request cancellation…")).await;
    wait_text(&client, "h1", |t| t == "Request cancellation of tasks").await;
    let count = wait_text(&client, "#bulk-count", |t| !t.is_empty()).await;
    assert_eq!(count, "2 tasks match.");
    screenshot(&client, "bulk-confirm").await;
    for id in ["9", "12"] {
        assert_eq!(
            repo.get(id).await.unwrap().unwrap().status,
            TaskStatus::Pending
        );
    }
    click(&client, Locator::Id("confirm")).await;
    let done = wait_text(&client, "#bulk-done", |t| !t.is_empty()).await;
    assert_eq!(done, "2 tasks cancellation requested.");
    for id in ["9", "12"] {
        assert_eq!(
            repo.get(id).await.unwrap().unwrap().status,
            TaskStatus::CancelRequested
        );
    }
    assert_eq!(
        repo.get("3").await.unwrap().unwrap().status,
        TaskStatus::Completed
    );

    // A task whose id is `..`: its link leads to it, not to the overview.
    repo.save(TaskRecord::new("..", "etl", "dora", TaskStatus::Pending))
        .await
        .unwrap();
    client
        .goto(&format!("{read_only}/tasks?service=etl&user=dora"))
        .await
        .unwrap();
    click(&client, Locator::LinkText("..")).await;
    wait_text(&client, "h1", |t| t == "Task ..").await;

    // A narrow screen: the task page still reads without sideways scrolling of the page.
    client.set_window_size(400, 1300).await.unwrap();
    client.goto(&format!("{writable}/tasks/5")).await.unwrap();
    wait_text(&client, "#status", |t| t == "cancel_requested").await;
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        serde_json::json!(true),
        "the page is wider than a narrow screen"
    );
    screenshot(&client, "task-narrow").await;
}
