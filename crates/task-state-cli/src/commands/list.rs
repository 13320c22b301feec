//! `list [--service S] [--user U] [--status ST]... [--json]`.

use futures::StreamExt;
use task_state_core::{layout, Error, Scope, TaskRepository, TaskRepositoryExt};
use task_state_redis::BATCH_SIZE;

use crate::cli::ListArgs;
use crate::failure::{Exit, Failure};
use crate::output::{list_row, Output, LIST_HEADER};

pub(crate) async fn run(
    repo: &dyn TaskRepository,
    args: ListArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let scope = scope(args.service, args.user);
    // Checked here so that a bad name is a usage error, not an unreadable record.
    scope.validate()?;
    let wanted = |status| args.status.is_empty() || args.status.contains(&status);
    // Only the ids and one batch of records are held at a time; a table keeps its rows,
    // which are a few short strings a task.
    let mut records = repo.stream(scope, BATCH_SIZE);
    let mut table = (!args.json).then(|| out.table(&LIST_HEADER));
    let mut unreadable = 0usize;
    while let Some(item) = records.next().await {
        let record = match item {
            Ok(record) => record,
            // The index itself is not a set: nothing of the scope can be listed.
            Err(e @ Error::WrongType { .. }) if is_index(&e) => return Err(e.into()),
            // One bad record (or a bad id in an index) must not hide the others.
            Err(
                e @ (Error::Decode { .. } | Error::WrongType { .. } | Error::InvalidInput { .. }),
            ) => {
                unreadable += 1;
                tracing::warn!("skipped: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !wanted(record.status) {
            continue;
        }
        match &mut table {
            Some(table) => {
                table.add_row(list_row(out, &record));
            }
            None => out.json_line(record.to_json().as_bytes())?,
        }
    }
    if let Some(table) = &table {
        out.print_table(table)?;
    }
    if unreadable > 0 {
        return Err(Failure::new(
            Exit::Error,
            format!("{unreadable} record(s) could not be read; the others were listed"),
        ));
    }
    Ok(())
}

/// True for an error about an index key rather than a record.
fn is_index(e: &Error) -> bool {
    matches!(e, Error::WrongType { key, .. } if layout::is_index_key(key))
}

fn scope(service: Option<String>, user: Option<String>) -> Scope {
    match (service, user) {
        (Some(service), Some(user_id)) => Scope::ServiceUser { service, user_id },
        (Some(service), None) => Scope::Service(service),
        (None, Some(user_id)) => Scope::User(user_id),
        (None, None) => Scope::All,
    }
}
