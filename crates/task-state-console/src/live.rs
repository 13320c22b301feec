//! A task's log, followed live as server-sent events until the task reaches a final status.
//!
//! Events: `log` (data: `{"at": …, "message": …}`; id: the entry's number from 1, so that a
//! reconnecting `EventSource` resumes after the last one it had), `status` (data: the
//! status, at the start and at every change) and `end` (data: the final status, or
//! `deleted`), after which the stream closes. The repository has no read of a log's tail, so
//! each poll reads the record.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use task_state_core::{TaskRepository, TaskStatus};
use tokio::sync::watch;

use crate::fields;

struct Follow {
    repo: Arc<dyn TaskRepository>,
    task_id: String,
    sent: usize,
    status: Option<TaskStatus>,
    poll: Duration,
    stopping: watch::Receiver<bool>,
    pending: std::collections::VecDeque<Event>,
    first: bool,
    done: bool,
}

/// The event stream of `task_id`'s log, from entry `from` (0-based) on, until the task's
/// final status or until `stopping` turns true (the server shuts down; the browser then
/// reconnects to wherever the console comes back).
pub(crate) fn follow(
    repo: Arc<dyn TaskRepository>,
    task_id: String,
    from: usize,
    poll: Duration,
    stopping: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let state = Follow {
        repo,
        task_id,
        sent: from,
        status: None,
        poll,
        stopping,
        pending: Default::default(),
        first: true,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done || *s.stopping.borrow() {
                return None;
            }
            if !s.first {
                let poll = s.poll;
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = s.stopping.changed() => return None,
                }
            }
            s.first = false;
            s.poll_once().await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

impl Follow {
    /// Reads the record once and queues what is new.
    async fn poll_once(&mut self) {
        let record = match self.repo.get(&self.task_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.pending
                    .push_back(Event::default().event("end").data("deleted"));
                self.done = true;
                return;
            }
            // A failed read (a restart, a failover) is waited out: the next poll tries again.
            Err(e) => {
                tracing::debug!(task_id = %self.task_id, error = %e, "reading a followed log failed");
                return;
            }
        };
        for (n, raw) in record.logs.iter().enumerate().skip(self.sent) {
            let (at, message) = fields::log_line(raw);
            let data = serde_json::json!({ "at": at, "message": message }).to_string();
            self.pending.push_back(
                Event::default()
                    .event("log")
                    .id((n + 1).to_string())
                    .data(data),
            );
        }
        self.sent = self.sent.max(record.logs.len());
        if self.status != Some(record.status) {
            self.pending.push_back(
                Event::default()
                    .event("status")
                    .data(record.status.as_str()),
            );
            self.status = Some(record.status);
        }
        if record.status.is_terminal() {
            self.pending
                .push_back(Event::default().event("end").data(record.status.as_str()));
            self.done = true;
        }
    }
}
