//! Checks of the listings and streams: what they hold and in which order.

use futures::StreamExt;

use super::support::*;
use crate::{Error, Result, Scope, TaskRecord, TaskRepository, TaskRepositoryExt};

/// `list_by_ids` returns the existing records in task id order whatever the order asked,
/// skips ids without a record, and reports invalid ids in `unreadable` as
/// [`Error::InvalidInput`] without failing; an empty slice gives an empty list.
pub async fn list_by_ids_skips_and_reports(repo: &dyn TaskRepository) {
    const CHECK: &str = "list_by_ids_skips_and_reports";
    let (s, u) = ("cf-ids-svc", "cf-ids-user");
    for id in ["cf-ids-b", "cf-ids-a", "cf-ids-c"] {
        saved(repo, id, s, u, CHECK).await;
    }
    let asked = strings(&[
        "cf-ids-c",
        "cf-ids-missing",
        "bad:id",
        "cf-ids-a",
        "",
        "cf-ids-b",
    ]);
    let list = ok(repo.list_by_ids(&asked).await, CHECK);
    assert_eq!(
        list.ids(),
        ["cf-ids-a", "cf-ids-b", "cf-ids-c"],
        "{CHECK}: records"
    );
    let mut reported: Vec<&str> = list
        .unreadable
        .iter()
        .map(|u| {
            assert!(
                matches!(u.error, Error::InvalidInput { .. }),
                "{CHECK}: {:?} reported as {:?}, expected Error::InvalidInput",
                u.task_id,
                u.error
            );
            u.task_id.as_str()
        })
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, ["", "bad:id"], "{CHECK}: unreadable");

    let empty = ok(repo.list_by_ids(&[]).await, CHECK);
    assert!(
        empty.records.is_empty() && empty.unreadable.is_empty(),
        "{CHECK}: list_by_ids(&[])"
    );
}

/// Every listing (`list_ids`, `list`, `list_all`, `list_by_service`,
/// `list_by_service_and_user`, `list_by_user`, `list_by_ids`) is in task id order
/// ([`compare_task_ids`](crate::compare_task_ids): numeric ids by value first, then the others by text), and
/// `list_users_by_service` is sorted.
pub async fn listings_are_sorted(repo: &dyn TaskRepository) {
    const CHECK: &str = "listings_are_sorted";
    let (s, u) = ("cf-sort-svc", "cf-sort-user");
    let expected = ["7779", "77710", "777100", "cf-sort-a", "cf-sort-b"];
    for id in ["777100", "cf-sort-b", "7779", "cf-sort-a", "77710"] {
        saved(repo, id, s, u, CHECK).await;
    }
    for scope in [service(s), service_user(s, u), user_scope(u)] {
        assert_eq!(
            listing(repo, &scope, CHECK).await,
            expected,
            "{CHECK}: {scope:?}"
        );
        assert_eq!(
            ok(repo.list_ids(&scope).await, CHECK),
            expected,
            "{CHECK}: list_ids({scope:?})"
        );
    }
    let all = listing(repo, &Scope::All, CHECK).await;
    let ours: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|id| expected.contains(id))
        .collect();
    assert_eq!(ours, expected, "{CHECK}: list_all");
    let shuffled = strings(&["cf-sort-b", "77710", "cf-sort-a", "777100", "7779"]);
    assert_eq!(
        ok(repo.list_by_ids(&shuffled).await, CHECK).ids(),
        expected,
        "{CHECK}: list_by_ids"
    );

    let users_service = "cf-sort-users";
    for (n, user) in ["cf-zed", "cf-amy", "cf-mia"].into_iter().enumerate() {
        saved(
            repo,
            &format!("cf-sort-user-{n}"),
            users_service,
            user,
            CHECK,
        )
        .await;
    }
    assert_eq!(
        users(repo, users_service, CHECK).await,
        ["cf-amy", "cf-mia", "cf-zed"],
        "{CHECK}: list_users_by_service"
    );
}

/// `TaskRepositoryExt::stream` yields the same records, in the same order, as the listing
/// of the same scope, whatever the batch size (0 counts as 1).
pub async fn stream_matches_list(repo: &dyn TaskRepository) {
    const CHECK: &str = "stream_matches_list";
    let (s, u) = ("cf-stream-svc", "cf-stream-user");
    for id in [
        "cf-stream-3",
        "cf-stream-1",
        "cf-stream-5",
        "cf-stream-2",
        "cf-stream-4",
    ] {
        saved(repo, id, s, u, CHECK).await;
    }
    ok(repo.append_log("cf-stream-2", "changed").await, CHECK);
    for scope in [Scope::All, service(s), service_user(s, u), user_scope(u)] {
        let listed = ok(repo.list(&scope).await, CHECK).records;
        for batch in [0, 1, 2, 3, 1000] {
            let streamed: Vec<TaskRecord> = repo
                .stream(scope.clone(), batch)
                .map(|item| ok(item, CHECK))
                .collect()
                .await;
            assert_eq!(
                streamed, listed,
                "{CHECK}: stream({scope:?}, {batch}) differs from list"
            );
        }
    }
    let empty: Vec<Result<TaskRecord>> = repo.stream(service("cf-stream-none"), 10).collect().await;
    assert!(empty.is_empty(), "{CHECK}: stream of an empty index");
}
