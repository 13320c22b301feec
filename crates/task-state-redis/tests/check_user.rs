//! The consistency check of one user's index, scoped like the DMS frontend's script.

mod common;

use common::fresh;
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::{check_user, UserCheckOptions};

#[tokio::test]
async fn a_user_name_with_glob_characters_matches_only_itself() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    for (id, service, user) in [
        ("1", "render", "a*"),
        ("2", "train", "ab"),
        ("3", "etl", "a?"),
    ] {
        repo.save(TaskRecord::new(id, service, user, TaskStatus::Running))
            .await
            .unwrap();
    }
    let report = check_user(&repo, "a*", UserCheckOptions::default())
        .await
        .unwrap();
    assert_eq!(report.services, ["render"]);
    assert_eq!(report.service_union_count, 1);
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.repaired, None);

    server.cli(&["SADD", "index:service:render:user:a*", "9"]);
    let report = check_user(
        &repo,
        "a*",
        UserCheckOptions {
            service: None,
            repair: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.missing_in_user_index, ["9"]);
    // 9 has no record: added, then removed again by the check against the record.
    assert_eq!(report.repaired, Some(2));
    assert_eq!(server.cli(&["SISMEMBER", "index:user:a*", "9"]), "0");
}

#[tokio::test]
async fn a_compared_set_of_the_wrong_type_is_named() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "render", "alice", TaskStatus::Running))
        .await
        .unwrap();
    server.cli(&["DEL", "index:user:alice"]);
    server.cli(&["SET", "index:user:alice", "x"]);
    let err = check_user(&repo, "alice", UserCheckOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, expected: "set" } if key == "index:user:alice"),
        "{err:?}"
    );
    assert_eq!(server.cli(&["GET", "index:user:alice"]), "x");
    let err = check_user(&repo, "a:b", UserCheckOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
