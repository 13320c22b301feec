//! Checks of the names a repository accepts: task ids, services and user ids.

use futures::StreamExt;

use super::support::*;
use crate::{Error, Scope, TaskRepository, TaskRepositoryExt, TaskStatus, MAX_NAME_BYTES};

/// Task ids, services and user ids that are empty, contain `:` or a control character, or
/// are longer than [`MAX_NAME_BYTES`] bytes are [`Error::InvalidInput`] for every method
/// (listings, streams and `list_by_ids` included), and nothing is written.
pub async fn invalid_names_are_rejected(repo: &dyn TaskRepository) {
    const CHECK: &str = "invalid_names_are_rejected";
    let (id, s, u) = ("cf-val-1", "cf-val-svc", "cf-val-user");
    let existing = saved(repo, "cf-val-existing", s, u, CHECK).await;
    let all_before = listing(repo, &Scope::All, CHECK).await;

    for bad in bad_names() {
        let what = format!("{CHECK} ({bad:?})");
        let what = what.as_str();
        let one = strings(&["x"]);
        assert_invalid(repo.save(new_record(&bad, s, u)).await, what);
        assert_invalid(repo.save(new_record(id, &bad, u)).await, what);
        assert_invalid(repo.save(new_record(id, s, &bad)).await, what);
        assert_invalid(repo.get(&bad).await, what);
        assert_invalid(repo.delete(&bad).await, what);
        assert_invalid(
            repo.set_status(&bad, TaskStatus::Running, Some("x")).await,
            what,
        );
        assert_invalid(
            repo.transition(&bad, &[TaskStatus::Pending], TaskStatus::Running, None)
                .await,
            what,
        );
        assert_invalid(repo.append_log(&bad, "x").await, what);
        assert_invalid(repo.append_logs(&bad, &one).await, what);
        assert_invalid(repo.append_logs(&bad, &[]).await, what);
        assert_invalid(repo.update_result(&bad, Some("p"), None).await, what);
        assert_invalid(repo.update_result(&bad, None, None).await, what);
        assert_invalid(repo.set_jobs(&bad, &one).await, what);

        let scopes = [
            service(&bad),
            service_user(&bad, u),
            service_user(s, &bad),
            user_scope(&bad),
        ];
        for scope in &scopes {
            assert_invalid(repo.list_ids(scope).await, what);
            assert_invalid(repo.list(scope).await, what);
            let first = repo.stream(scope.clone(), 10).next().await;
            assert!(
                matches!(first, Some(Err(Error::InvalidInput { .. }))),
                "{what}: stream({scope:?}) must yield Error::InvalidInput first, got {first:?}"
            );
        }
        assert_invalid(repo.list_by_service(&bad).await, what);
        assert_invalid(repo.list_by_service_and_user(&bad, u).await, what);
        assert_invalid(repo.list_by_service_and_user(s, &bad).await, what);
        assert_invalid(repo.list_by_user(&bad).await, what);
        assert_invalid(repo.list_users_by_service(&bad).await, what);

        let list = ok(repo.list_by_ids(std::slice::from_ref(&bad)).await, what);
        assert!(list.records.is_empty(), "{what}: list_by_ids records");
        assert!(
            matches!(
                list.unreadable.as_slice(),
                [report] if report.task_id == bad && matches!(report.error, Error::InvalidInput { .. })
            ),
            "{what}: list_by_ids must report the id as Error::InvalidInput: {list:?}"
        );
    }

    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: a rejected save wrote {id}"
    );
    assert_eq!(
        listing(repo, &Scope::All, CHECK).await,
        all_before,
        "{CHECK}: list_all changed"
    );
    assert_eq!(users(repo, s, CHECK).await, [u], "{CHECK}: users of {s}");
    assert_eq!(
        listing(repo, &user_scope(u), CHECK).await,
        [existing.task_id.as_str()],
        "{CHECK}: tasks of {u}"
    );
    assert_unchanged(repo, &existing, CHECK).await;
}

/// Names of exactly [`MAX_NAME_BYTES`] bytes (multi-byte characters counted in bytes) are
/// accepted for the task id, the service and the user id.
pub async fn longest_names_are_accepted(repo: &dyn TaskRepository) {
    const CHECK: &str = "longest_names_are_accepted";
    let id = format!("cf-long-{}", "9".repeat(MAX_NAME_BYTES - 8));
    let service = format!("cf-long-{}", "s".repeat(MAX_NAME_BYTES - 8));
    // 168 three-byte characters and 8 ASCII bytes: 512 bytes.
    let user = format!("cf-long-{}", "한".repeat((MAX_NAME_BYTES - 8) / 3));
    assert_eq!(id.len(), MAX_NAME_BYTES);
    assert_eq!(user.len(), MAX_NAME_BYTES);
    let record = saved(repo, &id, &service, &user, CHECK).await;
    assert_stored(repo, &record, CHECK).await;
    assert_placed(repo, &id, &service, &user, CHECK).await;
    assert!(
        ok(repo.append_log(&id, "long").await, CHECK).is_some(),
        "{CHECK}: append_log"
    );
    assert!(ok(repo.delete(&id).await, CHECK), "{CHECK}: delete");
    assert!(ok(repo.get(&id).await, CHECK).is_none(), "{CHECK}: deleted");
}

pub(super) fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "a:b".to_owned(),
        "7:metadata".to_owned(),
        "tab\there".to_owned(),
        "newline\n".to_owned(),
        "del\u{7f}".to_owned(),
        "x".repeat(MAX_NAME_BYTES + 1),
        // 171 characters, 513 bytes: the limit is in bytes.
        "한".repeat(171),
    ]
}
