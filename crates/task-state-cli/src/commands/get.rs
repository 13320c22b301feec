//! `get <ID> [--json]`.

use task_state_core::{layout, TaskRecord, TaskRepository};
use task_state_redis::RedisTaskRepository;

use crate::failure::Failure;
use crate::output::{logs_table, record_table, Output};

pub(crate) async fn run(
    repo: &RedisTaskRepository,
    id: &str,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if json {
        let stored = stored_json(repo, id).await?;
        return Ok(out.json_line(&stored)?);
    }
    let record = repo.get(id).await?.ok_or_else(|| Failure::not_found(id))?;
    out.print_table(&record_table(out, &record))?;
    if !record.logs.is_empty() {
        out.line("")?;
        out.print_table(&logs_table(out, &record))?;
    }
    Ok(())
}

/// The record's bytes exactly as stored (put on one line by [`Output::json_line`]), after
/// checking that they are a record: a script that asks for the JSON must get a record or an
/// error, never something else.
async fn stored_json(repo: &RedisTaskRepository, id: &str) -> Result<Vec<u8>, Failure> {
    let bytes = repo
        .get_raw(id)
        .await?
        .ok_or_else(|| Failure::not_found(id))?;
    TaskRecord::from_json_at(&layout::record_key(id), &bytes)?;
    Ok(bytes)
}
