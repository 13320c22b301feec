//! Smaller defects of issue #10: the id counter at its limit, `append_logs(&[])` behind a
//! lagging reader, and the reconciler's paging.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{connect, fresh};
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip;
use task_state_redis::{reconcile, RedisRepositorySettings, RedisTaskRepository};

#[tokio::test]
async fn peek_next_task_id_counts_past_i64_max_as_python_does() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    server.cli(&["SET", "task:id:sequence", "9223372036854775807"]);
    assert_eq!(
        repo.peek_next_task_id().await.unwrap(),
        "9223372036854775808"
    );
    server.cli(&["SET", "task:id:sequence", "-5"]);
    assert_eq!(repo.peek_next_task_id().await.unwrap(), "-4");
}

#[tokio::test]
async fn append_logs_of_nothing_asks_the_writer_whether_the_task_exists() {
    let Some(writer) = server_or_skip() else {
        return;
    };
    // A reader that has not seen the write yet, as a lagging replica.
    let reader = server_or_skip().unwrap();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(writer.url())
        .with_read_url(reader.url())
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    repo.save(TaskRecord::new("1", "render", "alice", TaskStatus::Running))
        .await
        .unwrap();
    assert!(repo.append_logs("1", &[]).await.unwrap());
    assert!(!repo.append_logs("2", &[]).await.unwrap());
}

#[tokio::test]
async fn the_reconciler_prunes_a_set_page_by_page() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let repo = connect(&server).await;
    // Loaded up front, so that MONITOR does not show a NOSCRIPT retry.
    repo.load_scripts().await.unwrap();
    let ghosts: Vec<String> = (0..2_000).map(|i| format!("ghost{i}")).collect();
    let mut args = vec!["SADD", "index:tasks"];
    args.extend(ghosts.iter().map(String::as_str));
    server.cli(&args);

    // MONITOR shows the order of the commands: an SSCAN page, its prune script, the next
    // page, ... rather than every page first.
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "MONITOR"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    assert_eq!(reconcile(&repo).await.unwrap(), 2_000);
    server.cli(&["ECHO", "reconciled"]);
    let mut order = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for line in lines {
        let line = line.unwrap();
        if line.contains("\"reconciled\"") || Instant::now() > deadline {
            break;
        }
        let upper = line.to_ascii_uppercase();
        if upper.contains("\"SSCAN\"") {
            order.push('s');
        } else if upper.contains("\"EVALSHA\"") || upper.contains("\"FCALL\"") {
            order.push('e');
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let order: String = order.into_iter().collect();
    assert!(order.len() >= 4, "several pages: {order}");
    assert!(order.starts_with("se"), "{order}");
    assert!(
        !order.contains("ee"),
        "one prune script after each page: {order}"
    );
    assert_eq!(server.cli(&["SCARD", "index:tasks"]), "0");
}
