//! `rediss://` against a real TLS server with a private CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fred::interfaces::ClientLike;
use fred::types::CustomCommand;

use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{
    redis_available, require_tool, server_binary, RedisServer, SERVER_VAR,
};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository, TLS_CA_FILE_VAR};

/// A CA and a server certificate for localhost and 127.0.0.1, made with openssl.
fn certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=task-state test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.cnf",
    ])
}

/// The calls of each command on `repo`'s writer's server so far (`INFO commandstats`).
async fn calls(repo: &RedisTaskRepository) -> impl Fn(&str) -> u64 {
    let stats: String = repo
        .raw_writer()
        .next()
        .custom(
            CustomCommand::new_static("INFO", None::<u16>, false),
            vec!["commandstats"],
        )
        .await
        .unwrap();
    move |command: &str| {
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn rediss_urls_connect_with_the_configured_ca() {
    if !require_tool(
        "openssl",
        "version",
        "the TLS test makes its certificates with it",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("task-state-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        certificates(&dir),
        "openssl could not make the certificates"
    );
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    if !redis_available() {
        assert!(std::env::var_os("CI").is_none(), "redis-server is needed");
        return;
    }
    let args = [
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &path("server.crt"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.crt"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "tls-secret",
    ];
    let server = match RedisServer::start_with(&args) {
        Ok(server) => server,
        // Another server binary under test (TASK_STATE_REDIS_SERVER) may be built without
        // TLS; the default one must have it.
        Err(e) if std::env::var_os(SERVER_VAR).is_some() => {
            eprintln!("skipping: {} cannot serve TLS: {e}", server_binary());
            return;
        }
        Err(e) => panic!("redis-server with TLS: {e}"),
    };
    let url = format!("rediss://:tls-secret@localhost:{}/0", server.port());
    let settings = RedisRepositorySettings::builder()
        .with_write_url(&url)
        .with_tls_ca_file(dir.join("ca.crt"))
        .with_connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    let before = calls(&repo).await;
    assert_eq!(
        repo.append_log("1", "over TLS")
            .await
            .unwrap()
            .unwrap()
            .logs
            .len(),
        1
    );
    // The default write path's edits run on connections of their own, through TLS as the
    // writer pool's (the server has no plain port): `WATCH` edits, of a short record as of
    // a long one, and no script.
    let long = "y".repeat(20_000);
    assert!(repo
        .append_logs("1", std::slice::from_ref(&long))
        .await
        .unwrap());
    let record = repo
        .set_status("1", TaskStatus::Running, Some("started"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.logs.len(), 3);
    assert!(record.logs[1].ends_with(&long));
    let after = calls(&repo).await;
    assert_eq!(after("watch") - before("watch"), 3);
    assert_eq!(after("exec") - before("exec"), 3);
    let scripts = |calls: &dyn Fn(&str) -> u64| calls("fcall") + calls("evalsha");
    assert_eq!(scripts(&after), scripts(&before), "no edit ran a script");
    repo.close().await;

    // Without the CA, the server's certificate is not trusted: an error, not plain text.
    let untrusted = RedisRepositorySettings::builder()
        .with_write_url(&url)
        .with_connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let err = RedisTaskRepository::connect(untrusted).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(!err.to_string().contains("tls-secret"));

    // A plain redis:// URL to a TLS port does not get through either.
    let plain = RedisRepositorySettings::builder()
        .with_write_url(format!("redis://:tls-secret@localhost:{}/0", server.port()))
        .with_connect_timeout(Duration::from_secs(2))
        .with_command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(RedisTaskRepository::connect(plain).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_ca_file_is_a_config_error_naming_the_variable() {
    let err = RedisRepositorySettings::builder()
        .with_write_url("rediss://localhost:6380/0")
        .with_tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains(TLS_CA_FILE_VAR)),
        "{err:?}"
    );
}

#[test]
fn a_missing_tool_fails_naming_it_unless_opted_out() {
    let opted_out = std::env::var_os(task_state_redis::testing::SKIP_MISSING_TOOLS_VAR)
        .is_some_and(|v| !v.is_empty())
        && std::env::var_os("CI").is_none();
    let result = std::panic::catch_unwind(|| {
        require_tool("task-state-no-such-tool", "--version", "this test needs it")
    });
    match result {
        Ok(found) => {
            assert!(opted_out, "a missing tool passed silently");
            assert!(!found);
        }
        Err(panic) => {
            assert!(!opted_out);
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("`task-state-no-such-tool`"), "{message}");
            assert!(
                message.contains("TASK_STATE_SKIP_MISSING_TOOLS"),
                "{message}"
            );
        }
    }
    assert!(require_tool("openssl", "version", "the TLS test") || opted_out);
}
