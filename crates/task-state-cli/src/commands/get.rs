//! `get <ID> [--json]`.

use fred::prelude::{Error as FredError, KeysInterface, Value};
use task_state_core::{validate_task_id, Error, TaskRecord, TaskRepository};
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
        return Ok(out.raw_line(&stored)?);
    }
    let record = repo.get(id).await?.ok_or_else(|| Failure::not_found(id))?;
    out.print_table(&record_table(out, &record))?;
    if !record.logs.is_empty() {
        out.line("")?;
        out.print_table(&logs_table(out, &record))?;
    }
    Ok(())
}

/// The record's bytes exactly as stored, after checking that they are a record: a script
/// that asks for the JSON must get a record or an error, never something else.
///
/// The repository decodes what it reads, and re-encoding is byte-identical only for records
/// this version writes itself, so this reads the key directly.
async fn stored_json(repo: &RedisTaskRepository, id: &str) -> Result<Vec<u8>, Failure> {
    validate_task_id(id)?;
    let key = format!("task:{id}");
    let value: Value = repo
        .reader()
        .next()
        .get(&key)
        .await
        .map_err(|e| read_error(e, &key))?;
    let bytes = match value {
        Value::Null => return Err(Failure::not_found(id)),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        other => {
            return Err(Error::decode(key, format!("unexpected value {other:?}")).into());
        }
    };
    TaskRecord::from_json_at(&key, &bytes)?;
    Ok(bytes)
}

fn read_error(e: FredError, key: &str) -> Failure {
    if e.details().starts_with("WRONGTYPE") {
        return Error::WrongType {
            key: key.to_owned(),
            expected: "string",
        }
        .into();
    }
    // A command error names no URL, so it carries no password.
    Error::backend(format!("reading {key}: {}", e.details())).into()
}
