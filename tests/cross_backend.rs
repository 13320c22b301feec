//! The fake and the real thing side by side: the same worker's life on the in-memory backend
//! and on Redis, with the same clock, must leave byte-identical records and identical
//! listings, so that a test written against the fake says something true about Redis.

use std::sync::Arc;
use std::time::Duration;

use task_state::memory::InMemoryTaskRepository;
use task_state::redis::testing::server_or_skip;
use task_state::redis::{RedisRepositorySettings, RedisTaskRepository};
use task_state::{Clock, Error, ManualClock, Scope, TaskRecord, TaskRepository, TaskStatus, Zone};

/// A worker's life, as the DMS runs it, with the clock moved between steps; returns every
/// record's JSON and the listings afterwards.
async fn life(repo: &dyn TaskRepository, clock: &ManualClock) -> Vec<String> {
    use TaskStatus::*;
    let mut seen = Vec::new();
    for n in 0..3 {
        let id = repo.next_task_id().await.unwrap();
        let mut record = TaskRecord::new(id.as_str(), "render", format!("user{}", n % 2), Pending);
        record.created_at =
            task_state::TaskTime::from_timestamp(clock.now(), &Zone::named("Asia/Seoul").unwrap());
        record.parameters.insert("frames", 240 + n);
        let ratio = serde_json::value::RawValue::from_string("0.30000000000000004".to_owned());
        record.parameters.insert_raw("ratio", ratio.unwrap());
        repo.create(record).await.unwrap();
        clock.advance(Duration::from_micros(484_074)); // to a whole second: no fraction
        repo.transition(
            &id,
            &[Pending],
            Dispatching,
            Some("submitting, with a comma"),
        )
        .await
        .unwrap();
        repo.set_jobs(&id, &[format!("slurm-{n}")]).await.unwrap();
        clock.advance(Duration::from_micros(1_234_567));
        repo.set_status(&id, Running, Some("worker started\nsecond line"))
            .await
            .unwrap();
        repo.append_logs(&id, &["한국어 ✓".to_owned(), "\"quoted\" ]".to_owned()])
            .await
            .unwrap();
        repo.update_result(&id, Some(r#"{"phase":"Running"}"#), None)
            .await
            .unwrap();
        repo.update_result(&id, None, Some("out\u{1}put"))
            .await
            .unwrap();
        let outcome = repo.transition(&id, &[Pending], Cancelled, None).await;
        assert!(matches!(
            outcome,
            Err(Error::Conflict {
                current: Running,
                ..
            })
        ));
        if n == 2 {
            repo.delete(&id).await.unwrap();
        } else {
            let done = repo
                .set_status(&id, Completed, Some("worker finished"))
                .await
                .unwrap()
                .unwrap();
            seen.push(done.to_json());
        }
        clock.advance(Duration::from_millis(10));
    }
    // Moving a task to another user, as a re-save does.
    let mut moved = repo.get("1").await.unwrap().unwrap();
    moved.user_id = "user9".into();
    seen.push(repo.save(moved).await.unwrap().to_json());
    for scope in [
        Scope::All,
        Scope::Service("render".into()),
        Scope::User("user0".into()),
        Scope::User("user9".into()),
    ] {
        let list = repo.list(&scope).await.unwrap();
        seen.push(format!("{scope:?}: {:?}", list.ids()));
    }
    seen.push(format!(
        "users: {:?}",
        repo.list_users_by_service("render").await.unwrap()
    ));
    seen.push(format!("next: {}", repo.peek_next_task_id().await.unwrap()));
    for id in ["1", "2"] {
        seen.push(repo.get(id).await.unwrap().unwrap().to_json());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_redis_write_the_same_bytes() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let start = "2025-11-17T01:00:16.515926Z".parse().unwrap();
    let zone = Zone::named("Asia/Seoul").unwrap();

    let memory_clock = ManualClock::new(start);
    let memory = InMemoryTaskRepository::builder()
        .zone(zone.clone())
        .clock(Arc::new(memory_clock.clone()))
        .build();
    let in_memory = life(&memory, &memory_clock).await;

    let redis_clock = ManualClock::new(start);
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_timezone("Asia/Seoul")
        .build()
        .unwrap();
    let redis = RedisTaskRepository::connect(settings)
        .await
        .unwrap()
        .with_clock(Arc::new(redis_clock.clone()));
    let in_redis = life(&redis, &redis_clock).await;

    assert_eq!(in_memory.len(), in_redis.len());
    for (m, r) in in_memory.iter().zip(&in_redis) {
        assert_eq!(m, r);
    }
    // The bytes Redis holds are the bytes the record encodes to.
    assert_eq!(
        server.cli(&["GET", "task:2"]),
        in_redis.last().unwrap().as_str()
    );
    assert!(in_redis
        .iter()
        .any(|j| j.contains(r#""2025-11-17T10:00:17+09:00,submitting, with a comma""#)));
}
