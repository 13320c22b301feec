//! One dependency is enough: the mock, the conformance suite and the test servers are all
//! reachable through the facade `task-state`.

use std::sync::Arc;

use task_state::conformance::{async_trait, RawRecords};
use task_state::memory::InMemoryTaskRepository;
use task_state::{MockTaskRepository, TaskRepository};

#[tokio::test]
async fn the_mock_is_reachable() {
    let mut mock = MockTaskRepository::new();
    mock.expect_next_task_id()
        .times(1)
        .returning(|| Ok("41".to_owned()));
    let repo: Arc<dyn TaskRepository> = Arc::new(mock);
    assert_eq!(repo.next_task_id().await.unwrap(), "41");
}

#[tokio::test]
async fn the_conformance_suite_runs_through_the_facade() {
    task_state::conformance::run_all(&InMemoryTaskRepository::default()).await;
}

#[test]
fn the_test_servers_are_reachable() {
    if let Some(server) = task_state::redis::testing::server_or_skip() {
        assert_eq!(server.cli(&["PING"]), "PONG");
    }
}

/// The macro, as a downstream backend's tests would write it, on the memory backend.
mod suite {
    use super::*;

    async fn fresh() -> Option<((), InMemoryTaskRepository)> {
        Some(((), InMemoryTaskRepository::default()))
    }

    struct Raw(InMemoryTaskRepository);

    #[async_trait]
    impl RawRecords for Raw {
        async fn plant_raw(&self, task_id: &str, text: &str) {
            self.0.insert_raw(task_id, "s", "u", text).unwrap();
        }
    }

    fn raw(_: &(), repo: &InMemoryTaskRepository) -> Raw {
        Raw(repo.clone())
    }

    task_state::conformance_tests!(fresh, raw_records = raw);
}
