//! `TASK_STATE_TEST_REDIS_URL`: the conformance suite on a server the user already has,
//! here a private server standing in for it. One test in its own binary, since it sets the
//! process environment.

mod common;

use std::time::Duration;

use task_state_redis::testing::{
    server_or_skip, test_redis_or_skip, ExternalRedis, TestRedis, EXTERNAL_MARKER_KEY,
    EXTERNAL_URL_VAR,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_on_an_existing_server_flushing_only_what_it_may() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}/5", server.port());
    let db5 = |args: &[&str]| {
        let mut all = vec!["-n", "5"];
        all.extend_from_slice(args);
        server.cli(&all)
    };
    db5(&["SET", "someone-elses", "data"]);

    let refused = ExternalRedis::lease(&url, false).await.unwrap_err();
    assert!(
        refused.contains("holds 1 keys") && refused.contains("TASK_STATE_TEST_REDIS_FLUSH=1"),
        "{refused}"
    );
    assert_eq!(db5(&["EXISTS", "someone-elses"]), "1", "nothing flushed");

    let lease = ExternalRedis::lease(&url, true).await.unwrap();
    assert_eq!(db5(&["DBSIZE"]), "1", "flushed, then marked");
    assert_eq!(db5(&["EXISTS", EXTERNAL_MARKER_KEY]), "1");
    assert_eq!(server.cli(&["DBSIZE"]), "0", "other databases untouched");

    // One test at a time: a second lease waits for the first.
    let waiting = tokio::spawn({
        let url = url.clone();
        async move { ExternalRedis::lease(&url, false).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the second test waits its turn");
    drop(lease);
    let second = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the turn passes on")
        .unwrap()
        .expect("what the tests left may be flushed without leave");
    drop(second);

    // Through the environment, as `cargo test` with the variable set runs the suite.
    std::env::set_var(EXTERNAL_URL_VAR, &url);
    for _ in 0..2 {
        let redis = test_redis_or_skip().await.unwrap();
        assert!(matches!(redis, TestRedis::External(_)), "{redis:?}");
        assert!(redis.private().is_none(), "no server to restart there");
        let repo =
            task_state_redis::RedisTaskRepository::connect(common::settings_for(&redis.url()))
                .await
                .unwrap();
        // The whole suite, whose id counter check needs a fresh database each time.
        task_state_core::conformance::run_all(&repo).await;
        assert_eq!(
            db5(&["EXISTS", "task:cf-status-1"]),
            "1",
            "the suite ran on db 5"
        );
        repo.close().await;
    }
    std::env::remove_var(EXTERNAL_URL_VAR);
    assert_eq!(server.cli(&["DBSIZE"]), "0", "database 0 never touched");
}
