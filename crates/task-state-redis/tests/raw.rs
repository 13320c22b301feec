//! What the repository offers tools beyond the trait, typed: a record's bytes and byte
//! ranges, and a ping that names the pool and no URL.

mod common;

use task_state_core::{layout, Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip_with;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

#[tokio::test]
async fn a_records_bytes_are_read_whole_or_by_range() {
    let Some((server, repo)) = common::fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("7", "render", "alice", TaskStatus::Running))
        .await
        .unwrap();
    let whole = repo.get_raw("7").await.unwrap().unwrap();
    assert_eq!(
        whole,
        server.cli(&["GET", &layout::record_key("7")]).as_bytes()
    );
    let (len, head) = repo.record_len_and_range("7", 0, 9).await.unwrap();
    assert_eq!((len, head.as_slice()), (whole.len(), &whole[..10]));
    let tail = repo.record_range("7", 10, len + 100).await.unwrap();
    assert_eq!(tail, &whole[10..], "cut at the record's end");
    let ranges = repo
        .record_ranges("7", &[(0, 4), (len - 3, usize::MAX), (len + 5, len + 9)])
        .await
        .unwrap();
    assert_eq!(
        ranges,
        [whole[..5].to_vec(), whole[len - 3..].to_vec(), Vec::new()],
        "each range of one record, the last past its end"
    );

    assert_eq!(repo.get_raw("8").await.unwrap(), None);
    assert_eq!(
        repo.record_len_and_range("8", 0, 9).await.unwrap(),
        (0, Vec::new())
    );
    assert_eq!(
        repo.record_range("8", 0, 9).await.unwrap(),
        Vec::<u8>::new()
    );

    let bad = repo.record_range("a:b", 0, 9).await.unwrap_err();
    assert!(matches!(bad, Error::InvalidInput { .. }), "{bad:?}");
    server.cli(&["SADD", &layout::record_key("9"), "x"]);
    let wrong = repo.record_len_and_range("9", 0, 9).await.unwrap_err();
    assert!(matches!(wrong, Error::WrongType { .. }), "{wrong:?}");
    let wrong = repo
        .record_ranges("9", &[(0, 9), (10, 19)])
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::WrongType { .. }), "{wrong:?}");
    let none = repo.record_ranges("8", &[(0, 9), (10, 19)]).await;
    assert_eq!(none.unwrap(), vec![Vec::<u8>::new(), Vec::new()]);
}

#[tokio::test]
async fn ping_names_the_pool_that_does_not_answer_and_no_url() {
    let Some(mut server) = server_or_skip_with(&["--requirepass", "s3cret-pass"]) else {
        return;
    };
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}/0", server.port());
    let settings = RedisRepositorySettings::builder()
        .with_write_url(&url)
        .with_command_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    repo.ping().await.unwrap();
    server.kill();
    let err = repo.ping().await.unwrap_err();
    let Error::Backend { message, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.starts_with("the writer pool ") && message.contains("ping"),
        "{message}"
    );
    assert!(
        !message.contains("s3cret") && !message.contains("redis://"),
        "{message}"
    );
    repo.close().await;
}
