//! Connections, credentials, timeouts and retries against real servers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fresh, settings};
use fred::prelude::ClientLike;
use task_state_core::{BackendKind, Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{free_port, server_or_skip_with};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository, WritePath};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn quick(url: &str) -> RedisRepositorySettings {
    RedisRepositorySettings::builder()
        .with_write_url(url)
        .with_connect_timeout(Duration::from_millis(800))
        .with_command_timeout(Duration::from_millis(800))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts and holds connections without a byte in reply.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let settings = RedisRepositorySettings::builder()
        .with_write_url(format!("redis://127.0.0.1:{port}/0"))
        .with_read_url(format!("redis://localhost:{port}/0"))
        .with_connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = RedisTaskRepository::connect(settings).await.unwrap_err();
    let took = started.elapsed();
    // The connect timeout, not that plus a wait for a QUIT that is never answered.
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert!(took < Duration::from_millis(1_800), "took {took:?}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert_eq!(
        err.backend_kind(),
        Some(BackendKind::Connect { timed_out: true })
    );
    assert!(
        err.is_timeout() && err.is_connection() && err.is_retryable(),
        "{err:?}"
    );
    assert!(err.to_string().contains("within 1s"), "{err}");
    held.abort();
}

#[tokio::test]
async fn a_server_that_is_down_fails_fast() {
    let port = free_port().unwrap();
    let started = Instant::now();
    let err = RedisTaskRepository::connect(quick(&format!("redis://:sekrit99@127.0.0.1:{port}/0")))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    // Refused, not timed out: nothing was sent, so it may be retried.
    assert_eq!(
        err.backend_kind(),
        Some(BackendKind::Connect { timed_out: false })
    );
    assert!(
        err.is_connection() && err.is_retryable() && !err.is_timeout(),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("sekrit99"));
}

#[tokio::test]
async fn a_wrong_password_is_a_backend_error_without_the_password() {
    let Some(server) = server_or_skip_with(&["--requirepass", "right-pass"]) else {
        return;
    };
    let url = format!("redis://:wrong-pass@127.0.0.1:{}/0", server.port());
    let err = RedisTaskRepository::connect(quick(&url)).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert_eq!(err.backend_kind(), Some(BackendKind::Auth), "{err:?}");
    assert!(!err.is_retryable() && !err.is_connection(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("wrong-pass"), "{shown}");
    let good = format!("redis://:right-pass@127.0.0.1:{}/0", server.port());
    let repo = RedisTaskRepository::connect(quick(&good)).await.unwrap();
    assert_eq!(repo.next_task_id().await.unwrap(), "1");
}

#[tokio::test]
async fn acl_users_in_the_url_work() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    server.cli(&["ACL", "SETUSER", "worker", "on", ">w-pass", "~*", "+@all"]);
    let url = format!("redis://worker:w-pass@127.0.0.1:{}/0", server.port());
    let repo = RedisTaskRepository::connect(quick(&url)).await.unwrap();
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert!(repo.get("1").await.unwrap().is_some());
    let bad = format!("redis://worker:nope-pass@127.0.0.1:{}/0", server.port());
    assert!(matches!(
        RedisTaskRepository::connect(quick(&bad)).await,
        Err(Error::Backend { .. })
    ));
}

#[tokio::test]
async fn a_slow_server_gives_a_timeout_not_a_hang() {
    // Redis 7 refuses DEBUG unless told otherwise; 6.2 has no such setting.
    let debug: &[&str] = if task_state_redis::testing::server_major_version() >= 7 {
        &["--enable-debug-command", "yes"]
    } else {
        &[]
    };
    let Some(server) = server_or_skip_with(debug) else {
        return;
    };
    let repo = RedisTaskRepository::connect(quick(&server.url()))
        .await
        .unwrap();
    let port = server.port();
    let sleeper = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "3"])
            .output()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let err = repo.get("1").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    // A read that timed out changed nothing: it may be repeated.
    assert_eq!(err.backend_kind(), Some(BackendKind::Timeout), "{err:?}");
    assert!(err.is_timeout() && err.is_retryable() && !err.is_reply_lost());
    // A mutation that timed out may have run once the server wakes: not to be repeated.
    let err = repo
        .set_status("1", TaskStatus::Running, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.backend_kind(),
        Some(BackendKind::ReplyLost { timed_out: true }),
        "{err:?}"
    );
    assert!(err.is_timeout() && err.is_reply_lost() && !err.is_retryable());
    sleeper.join().unwrap().unwrap();
}

#[tokio::test]
async fn the_repository_reconnects_after_a_restart() {
    let Some((mut server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    server.kill();
    // Once the client knows the connection is gone, a mutation is never handed to it: it
    // fails as not sent, which may be retried, not as a lost reply.
    for _ in 0..500 {
        if !repo.raw_writer().clients().iter().any(|c| c.is_connected()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let during = tokio::time::timeout(Duration::from_secs(10), repo.append_log("1", "x")).await;
    assert!(
        matches!(during, Ok(Err(Error::Backend { .. }))),
        "{during:?}"
    );
    let during = during.unwrap().unwrap_err();
    assert_eq!(
        during.backend_kind(),
        Some(BackendKind::Disconnected),
        "{during:?}"
    );
    assert!(during.is_retryable() && during.is_connection() && !during.is_reply_lost());
    assert!(during.to_string().contains("not sent"), "{during}");
    assert!(started.elapsed() < Duration::from_secs(7));
    // A read against the stopped server is retryable, on the link or on the timeout.
    let read = repo.get("1").await.unwrap_err();
    assert!(read.is_retryable(), "{read:?}");
    assert!(read.is_connection() || read.is_timeout(), "{read:?}");
    server.restart().unwrap();
    // The data is gone (no persistence) and the scripts too: both must be handled.
    let mut saved = None;
    for _ in 0..50 {
        match repo
            .save(TaskRecord::new("2", "s", "u", TaskStatus::Pending))
            .await
        {
            Ok(record) => {
                saved = Some(record);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(saved.is_some(), "no reconnection");
    assert_eq!(
        repo.append_log("2", "after restart")
            .await
            .unwrap()
            .unwrap()
            .logs
            .len(),
        1
    );
    let _ = settings(&server);
}

/// A proxy that drops the connection instead of passing on the reply to the first script
/// call (`call`: FCALL, or EVALSHA on Redis 6.2, which answers FCALL "unknown command"),
/// after the server has run it: the client cannot know whether the mutation happened.
async fn lossy_proxy(upstream: u16, call: &'static [u8]) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let armed = Arc::new(AtomicBool::new(false));
                let armed_up = armed.clone();
                // The command's name as a RESP bulk string, so that a script's text that
                // names it (a `FUNCTION LOAD`'s, say) does not arm the proxy.
                let mut word = format!("${}\r\n", call.len()).into_bytes();
                word.extend_from_slice(call);
                word.extend_from_slice(b"\r\n");
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if buf[..n]
                            .windows(word.len())
                            .any(|w| w.eq_ignore_ascii_case(&word))
                        {
                            armed_up.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if armed.load(Ordering::SeqCst) && !flag.swap(true, Ordering::SeqCst) {
                        break; // swallow the reply and hang up
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    (port, dropped)
}

#[tokio::test]
async fn a_mutation_whose_reply_is_lost_is_not_applied_twice() {
    lost_reply(WritePath::Script).await;
}

/// The same on the optimistic path: the reply of its `EXEC` is lost (on Valkey 8.1, which
/// writes with `SET … IFEQ` there, the `WATCH` path is forced).
#[tokio::test]
async fn an_exec_whose_reply_is_lost_is_not_applied_twice() {
    lost_reply(WritePath::Watch).await;
}

async fn lost_reply(path: WritePath) {
    let Some((server, direct)) = fresh().await else {
        return;
    };
    direct
        .save(TaskRecord::new("1", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    // Scripts are loaded on first use; loaded here, so that the first script call through
    // the proxy runs instead of meeting NOSCRIPT or "Function not found".
    direct.load_scripts().await.unwrap();
    // The server's script call: FCALL where it has Redis Functions (7.0 and later).
    let call: &'static [u8] = if path == WritePath::Watch {
        b"EXEC"
    } else if server.cli(&["FUNCTION", "LIST"]).starts_with("ERR") {
        b"EVALSHA"
    } else {
        b"FCALL"
    };
    let (port, dropped) = lossy_proxy(server.port(), call).await;
    let settings = RedisRepositorySettings::builder()
        .with_write_url(format!("redis://127.0.0.1:{port}/0"))
        .with_read_url(server.url())
        .with_pool_size(1)
        .with_command_timeout(Duration::from_secs(3))
        .with_write_path(path)
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    let outcome = repo.append_logs("1", &["exactly once".to_owned()]).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the proxy never dropped a reply"
    );
    assert!(matches!(outcome, Err(Error::Backend { .. })), "{outcome:?}");
    let lost = outcome.unwrap_err();
    assert_eq!(
        lost.backend_kind(),
        Some(BackendKind::ReplyLost { timed_out: false }),
        "{lost:?}"
    );
    assert!(lost.is_reply_lost() && lost.is_connection() && !lost.is_retryable());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = direct.get("1").await.unwrap().unwrap();
    let copies = record
        .logs
        .iter()
        .filter(|l| l.ends_with(",exactly once"))
        .count();
    assert_eq!(copies, 1, "the script ran once, and was not re-sent");
    // The repository recovers on a new connection.
    assert!(repo.append_logs("1", &["next".to_owned()]).await.unwrap());
}
