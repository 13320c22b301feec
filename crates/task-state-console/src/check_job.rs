//! The consistency check, run in the background from the check page, one at a time, with
//! its progress and its last result kept for the pages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use task_state_core::jiff::Timestamp;
use task_state_redis::{check, CheckOptions, CheckProgress, CheckReport, RedisTaskRepository};

/// The check as the pages see it.
#[derive(Debug, Default)]
pub(crate) struct CheckState {
    /// The running check, if one runs.
    pub(crate) running: Option<Running>,
    /// The last check that ended.
    pub(crate) last: Option<Finished>,
}

/// How far the running check is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Running {
    /// Before its first batch.
    Starting,
    /// After a batch.
    At(CheckProgress),
}

/// A check that ended.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub(crate) at: Timestamp,
    pub(crate) took: Duration,
    pub(crate) outcome: Result<CheckReport, String>,
}

/// Shared between the pages and the running check.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckJob {
    state: Arc<Mutex<CheckState>>,
}

impl CheckJob {
    /// Starts a check unless one runs; returns whether it started.
    pub(crate) fn start(&self, repo: RedisTaskRepository) -> bool {
        {
            let mut state = self.lock();
            if state.running.is_some() {
                return false;
            }
            state.running = Some(Running::Starting);
        }
        let shared = self.state.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let progress = shared.clone();
            let outcome = check(&repo, CheckOptions { repair: false }, move |p| {
                lock(&progress).running = Some(Running::At(*p));
            })
            .await
            .map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "consistency check failed");
            }
            let mut state = lock(&shared);
            state.running = None;
            state.last = Some(Finished {
                at: Timestamp::now(),
                took: started.elapsed(),
                outcome,
            });
        });
        true
    }

    /// Runs `f` on the current state.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&CheckState) -> T) -> T {
        f(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckState> {
        lock(&self.state)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
