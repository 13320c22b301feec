//! The whole conformance suite on a real Redis: every check as its own test on a fresh
//! private server, once on the repository itself and once through `Arc<dyn TaskRepository>`.
//! With `TASK_STATE_TEST_REDIS_URL` set, on that server instead, one test at a time, each
//! on a flushed database (see `task_state_redis::testing::ExternalRedis`).

mod common;

use common::raw;

task_state_core::conformance_tests!(common::suite_store, raw_records = raw);

/// The suite again with each write path forced (the default above is `watch` on Redis and
/// `ifeq` on Valkey 8.1 and later; `ifeq` is `watch` where the server lacks `IFEQ`).
macro_rules! on_path {
    ($module:ident, $path:expr) => {
        mod $module {
            use super::common::{self, raw};
            use task_state_redis::testing::TestRedis;
            use task_state_redis::RedisTaskRepository;

            async fn store() -> Option<(TestRedis, RedisTaskRepository)> {
                common::suite_store_on($path).await
            }

            task_state_core::conformance_tests!(store, raw_records = raw);
        }
    };
}

on_path!(script_path, task_state_redis::WritePath::Script);
on_path!(watch_path, task_state_redis::WritePath::Watch);
on_path!(ifeq_path, task_state_redis::WritePath::IfEq);

#[tokio::test]
async fn new_records_use_the_jobs_field() {
    use task_state_core::JobsField;
    let Some(server) = task_state_redis::testing::server_or_skip() else {
        return;
    };
    for field in [JobsField::Jobs, JobsField::ActiveJobs] {
        let settings = task_state_redis::RedisRepositorySettings::builder()
            .with_write_url(server.url())
            .with_jobs_field(field)
            .build()
            .unwrap();
        let repo = task_state_redis::RedisTaskRepository::connect(settings)
            .await
            .unwrap();
        task_state_core::conformance::new_records_use_the_jobs_field(&repo, field).await;
        server.cli(&["FLUSHALL"]);
    }
}
