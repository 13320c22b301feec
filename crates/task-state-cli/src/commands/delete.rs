//! `delete <ID> [--dry-run]`.

use task_state_core::layout::{self, TaskIndexes};
use task_state_core::{Scope, TaskRepository};

use crate::failure::Failure;
use crate::output::Output;

/// Deleting a task that is not there exits 3, so that a script notices a wrong id. With
/// `dry_run`, prints the keys and index entries that would go, and deletes nothing.
pub(crate) async fn run(
    repo: &dyn TaskRepository,
    id: &str,
    dry_run: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if dry_run {
        let record = repo.get(id).await?.ok_or_else(|| Failure::not_found(id))?;
        out.text(&format!(
            "would delete task {id:?} (service {}, user {}, status {}):",
            record.service, record.user_id, record.status
        ))?;
        let scope = Scope::ServiceUser {
            service: record.service.clone(),
            user_id: record.user_id.clone(),
        };
        let last = repo.list_ids(&scope).await?.iter().all(|other| other == id);
        for line in what_goes(id, &record.service, &record.user_id, last) {
            out.text(&format!("  {line}"))?;
        }
        return Ok(());
    }
    if repo.delete(id).await? {
        Ok(())
    } else {
        Err(Failure::not_found(id))
    }
}

/// The keys and index entries of a task, in the layout of docs/wire-format.md; the user's
/// entry in the service's users only when this is the user's `last` task there.
fn what_goes(id: &str, service: &str, user: &str, last: bool) -> Vec<String> {
    let indexes = TaskIndexes::of(service, user);
    let mut lines = vec![
        format!("key {}", layout::record_key(id)),
        format!("key {}", layout::metadata_key(id)),
        format!("member {id} of {}", indexes.tasks),
        format!("member {id} of {}", indexes.service),
        format!("member {id} of {}", indexes.user),
        format!("member {id} of {}", indexes.service_user),
    ];
    if last {
        lines.push(format!("member {user} of {}", indexes.service_users));
    }
    lines
}
