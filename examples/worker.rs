//! A worker as the DMS runs them: it registers a task, moves it through dispatching and
//! running with log lines, records the pod status, the launcher output and the scheduler's
//! job ids, completes the task, and prints the final record as stored.
//!
//! It uses Redis when `DMS_REDIS_WRITE_URL` is set, and the in-memory backend otherwise:
//!
//! ```text
//! cargo run --example worker
//! ```

use std::error::Error;
use std::sync::Arc;

use task_state::{TaskRecord, TaskRepository, TaskStatus};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let repo = repository().await?;
    use TaskStatus::*;

    let id = repo.next_task_id().await?;
    let mut record = TaskRecord::new(&id, "render", "alice", Pending);
    record.parameters.insert("scene", "castle.blend");
    record.parameters.insert("frames", 240);
    repo.save(record).await?;
    println!("registered task {id}");

    // Conditional transitions: a task that someone cancelled meanwhile is not resurrected.
    repo.transition(
        &id,
        &[Pending],
        Dispatching,
        Some("submitting to the scheduler"),
    )
    .await?;
    repo.set_jobs(&id, &["slurm-500".to_owned()]).await?;
    repo.transition(&id, &[Dispatching], Running, Some("worker started"))
        .await?;

    let progress = ["frame 1/240 rendered", "frame 240/240 rendered"].map(String::from);
    repo.append_logs(&id, &progress).await?;
    repo.update_result(&id, Some(r#"{"phase":"Succeeded"}"#), None)
        .await?;
    repo.update_result(&id, None, Some("rendered 240 frames, 0 errors\n"))
        .await?;

    let done = repo
        .transition(&id, &[Running], Completed, Some("worker finished"))
        .await?
        .ok_or_else(|| format!("task {id} disappeared"))?;
    println!("{}", done.to_json());
    Ok(())
}

/// The repository to use: Redis when `DMS_REDIS_WRITE_URL` is set, in memory otherwise.
async fn repository() -> Result<Arc<dyn TaskRepository>, Box<dyn Error>> {
    match std::env::var("DMS_REDIS_WRITE_URL") {
        Ok(url) if !url.is_empty() => {
            let shown = task_state::redis::RedisUrl::parse(&url)?;
            println!("using Redis at {shown}");
        }
        _ => {
            println!("DMS_REDIS_WRITE_URL is unset: using the in-memory backend (nothing is kept)")
        }
    }
    // The explicit fallback: a production service calls `repository_from_env()`, which
    // fails without DMS_REDIS_WRITE_URL.
    Ok(task_state::repository_from_env_or_memory().await?)
}
