//! `create --service S --user U [--id ID] [--param KEY=JSON]... [--priority low|high]`.

use task_state_core::{
    validate_name, validate_task_id, RawMap, SystemClock, TaskRecord, TaskRepository, TaskStatus,
    TaskTime, Zone,
};

use crate::cli::CreateArgs;
use crate::failure::Failure;
use crate::output::Output;

pub(crate) async fn run(
    repo: &dyn TaskRepository,
    args: CreateArgs,
    zone: &Zone,
    out: &mut Output,
) -> Result<(), Failure> {
    // Checked before an id is taken from the sequence, so that bad input wastes none.
    validate_name("service", &args.service)?;
    validate_name("user id", &args.user)?;
    let id = match args.id {
        Some(id) => {
            validate_task_id(&id)?;
            id
        }
        None => repo.next_task_id().await?,
    };
    let mut parameters = RawMap::new();
    for (key, value) in args.params {
        parameters.insert_raw(key, value);
    }
    let now = TaskTime::now(&SystemClock, zone);
    let record = TaskRecord::new_at(id, args.service, args.user, TaskStatus::Pending, now)
        .with_parameters(parameters)
        .with_priority(args.priority);
    // `create`, not `save`: an existing task is refused atomically, never wiped.
    let saved = repo.create(record).await?;
    out.line(&saved.task_id)?;
    Ok(())
}
