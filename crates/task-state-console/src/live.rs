//! A task's log, followed live as server-sent events until the task reaches a final status.
//!
//! Events: `log` (data: `{"at": …, "message": …}`; id: the entry's number from 1, so that a
//! reconnecting `EventSource` resumes after the last one it had), `status` (data: the
//! status, at the start and at every change) and `end` (data: the final status, or
//! `deleted`), after which the stream closes.
//!
//! However many viewers a task has, one follower reads it: the first viewer starts it, the
//! others share what it read (a [`watch`] channel holding the last record's log and status),
//! and it stops once the task is final or deleted, the last viewer has gone, or the server
//! shuts down. On Redis it reads only what is new ([`crate::tail`]) and, when keyspace
//! notifications are on, reads after a write rather than every poll ([`task_state_redis::RecordWrites`]); on
//! another backend (the repository has no read of a log's tail) each poll reads the record.
//! At most [`ConsoleConfig::max_live_streams`](crate::ConsoleConfig::max_live_streams)
//! streams are open at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::{RecordWrites, RedisTaskRepository};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::fields;
use crate::store::Store;
use crate::tail::{LogRead, LogTail};

/// What the follower of a task last read.
#[derive(Debug, Default)]
struct Snapshot {
    /// Not read yet.
    pending: bool,
    logs: Arc<Vec<String>>,
    status: Option<TaskStatus>,
    deleted: bool,
}

/// The followers of the tasks being viewed, and the bound on open streams.
#[derive(Debug)]
pub(crate) struct Followers {
    tasks: Mutex<HashMap<String, watch::Receiver<Arc<Snapshot>>>>,
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// Redis's keyspace notifications, when the backend is Redis and they are on: opened
    /// by the first follower.
    wakes: tokio::sync::OnceCell<Option<Arc<RecordWrites>>>,
    /// With notifications, the longest wait between two reads.
    fallback: Duration,
}

impl Followers {
    pub(crate) fn new(max_streams: usize, fallback: Duration) -> Self {
        Followers {
            tasks: Mutex::default(),
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            wakes: tokio::sync::OnceCell::new(),
            fallback,
        }
    }

    /// A bell that rings at each write of `task_id`'s record, when Redis publishes them.
    async fn watch(
        &self,
        redis: &RedisTaskRepository,
        task_id: &str,
    ) -> Option<(Arc<RecordWrites>, Arc<Notify>)> {
        let wakes = self
            .wakes
            .get_or_init(|| async {
                match RecordWrites::connect(redis).await {
                    Ok(writes) => Some(Arc::new(writes)),
                    Err(e) => {
                        tracing::info!(error = %e, "live logs poll: no keyspace notifications");
                        None
                    }
                }
            })
            .await
            .clone()?;
        let bell = wakes.watch(task_id).await?;
        Some((wakes, bell))
    }

    /// The most streams open at once.
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// A place for one more stream, or `None` when all are taken.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// The shared view of `task_id`, starting its follower when it has none.
    fn subscribe(
        self: &Arc<Self>,
        store: &Store,
        task_id: &str,
        poll: Duration,
        stopping: &watch::Receiver<bool>,
    ) -> watch::Receiver<Arc<Snapshot>> {
        let mut tasks = self.lock();
        if let Some(shared) = tasks.get(task_id) {
            return shared.clone();
        }
        let first = Arc::new(Snapshot {
            pending: true,
            ..Snapshot::default()
        });
        let (tx, rx) = watch::channel(first);
        tasks.insert(task_id.to_owned(), rx.clone());
        tokio::spawn(self.clone().follow(
            store.repo.clone(),
            store.redis.clone(),
            task_id.to_owned(),
            tx,
            poll,
            stopping.clone(),
        ));
        rx
    }

    /// Reads what is new every `poll` while anyone watches, and shares what it read.
    async fn follow(
        self: Arc<Self>,
        repo: Arc<dyn TaskRepository>,
        redis: Option<RedisTaskRepository>,
        task_id: String,
        tx: watch::Sender<Arc<Snapshot>>,
        poll: Duration,
        mut stopping: watch::Receiver<bool>,
    ) {
        // Subscribed before the first read, so that no write after it goes unnoticed.
        let bell = match &redis {
            Some(redis) => self.watch(redis, &task_id).await,
            None => None,
        };
        let mut tail = redis.as_ref().map(|_| LogTail::new(&task_id));
        let mut logs: Arc<Vec<String>> = Arc::default();
        loop {
            let read = match (&redis, &mut tail) {
                (Some(redis), Some(tail)) => tail.read(redis).await,
                _ => repo.get(&task_id).await.map(|r| match r {
                    Some(record) => LogRead::Whole(Box::new(record)),
                    None => LogRead::Missing,
                }),
            };
            let ended = match read {
                Ok(read) => share_read(&tx, &mut logs, read),
                // A failed read (a restart, a failover) is waited out: the next poll tries again.
                Err(e) => {
                    tracing::debug!(task_id = %task_id, error = %e, "reading a followed log failed");
                    false
                }
            };
            if !ended {
                self.wait(bell.as_ref().map(|(_, bell)| bell), poll, &mut stopping)
                    .await;
            }
            // Under the lock, so that no viewer joins a follower that is ending; the
            // registry's own receiver is one of the count.
            let done = {
                let mut tasks = self.lock();
                let done = ended || *stopping.borrow() || tx.receiver_count() <= 1;
                if done
                    && tasks
                        .get(&task_id)
                        .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
                {
                    tasks.remove(&task_id);
                }
                done
            };
            if done {
                if let Some((wakes, _)) = &bell {
                    wakes.unwatch(&task_id).await;
                }
                return;
            }
        }
    }

    /// Waits for the next read: a `poll`, then with a bell the next write (or the fallback);
    /// at most one read a poll either way. Cut short when the server shuts down.
    async fn wait(
        &self,
        bell: Option<&Arc<Notify>>,
        poll: Duration,
        stopping: &mut watch::Receiver<bool>,
    ) {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopping.changed() => {}
        }
        if let Some(bell) = bell {
            if !*stopping.borrow() {
                tokio::select! {
                    _ = bell.notified() => {}
                    _ = tokio::time::sleep(self.fallback.saturating_sub(poll)) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Arc<Snapshot>>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shares what `read` brought, `logs` being the log read so far; whether following ends (the
/// status is final, or the task is gone).
fn share_read(
    tx: &watch::Sender<Arc<Snapshot>>,
    logs: &mut Arc<Vec<String>>,
    read: LogRead,
) -> bool {
    match read {
        LogRead::Whole(record) => {
            let TaskRecord {
                logs: all, status, ..
            } = *record;
            *logs = Arc::new(all);
            share(tx, logs, status)
        }
        LogRead::Appended(appended, status) => {
            if !appended.is_empty() {
                let mut more = Vec::clone(logs);
                more.extend(appended);
                *logs = Arc::new(more);
            }
            share(tx, logs, status)
        }
        LogRead::Missing => {
            tx.send_replace(Arc::new(Snapshot {
                deleted: true,
                ..Snapshot::default()
            }));
            true
        }
    }
}

/// Shares a read of the log and the status; whether the status is final.
fn share(tx: &watch::Sender<Arc<Snapshot>>, logs: &Arc<Vec<String>>, status: TaskStatus) -> bool {
    tx.send_replace(Arc::new(Snapshot {
        pending: false,
        logs: logs.clone(),
        status: Some(status),
        deleted: false,
    }));
    status.is_terminal()
}

/// One viewer's stream.
struct View {
    shared: watch::Receiver<Arc<Snapshot>>,
    sent: usize,
    status: Option<TaskStatus>,
    stopping: watch::Receiver<bool>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    _place: OwnedSemaphorePermit,
}

/// The event stream of `task_id`'s log, from entry `from` (0-based) on, until the task's
/// final status or until `stopping` turns true (the server shuts down; the browser then
/// reconnects to wherever the console comes back). `place` is the stream's place among the
/// open ones, given back when it closes.
pub(crate) fn follow(
    followers: &Arc<Followers>,
    store: &Store,
    task_id: &str,
    from: usize,
    poll: Duration,
    stopping: watch::Receiver<bool>,
    place: OwnedSemaphorePermit,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut shared = followers.subscribe(store, task_id, poll, &stopping);
    // What the follower read before this viewer came is new to it.
    shared.mark_changed();
    let view = View {
        shared,
        sent: from,
        status: None,
        stopping,
        pending: Default::default(),
        done: false,
        _place: place,
    };
    let stream = futures::stream::unfold(view, |mut v| async move {
        loop {
            if let Some(event) = v.pending.pop_front() {
                return Some((Ok(event), v));
            }
            if v.done || *v.stopping.borrow() {
                return None;
            }
            tokio::select! {
                changed = v.shared.changed() => {
                    if changed.is_err() {
                        // The follower ended without a final status: the server stops.
                        v.done = true;
                    }
                }
                _ = v.stopping.changed() => return None,
            }
            let snapshot = v.shared.borrow_and_update().clone();
            v.queue(&snapshot);
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

impl View {
    /// Queues what `snapshot` holds that this viewer has not had.
    fn queue(&mut self, snapshot: &Snapshot) {
        if snapshot.pending {
            return;
        }
        if snapshot.deleted {
            self.pending
                .push_back(Event::default().event("end").data("deleted"));
            self.done = true;
            return;
        }
        for (n, raw) in snapshot.logs.iter().enumerate().skip(self.sent) {
            let (at, message) = fields::log_line(raw);
            let data = serde_json::json!({ "at": at, "message": message }).to_string();
            self.pending.push_back(
                Event::default()
                    .event("log")
                    .id((n + 1).to_string())
                    .data(data),
            );
        }
        self.sent = self.sent.max(snapshot.logs.len());
        let Some(status) = snapshot.status else {
            return;
        };
        if self.status != Some(status) {
            self.pending
                .push_back(Event::default().event("status").data(status.as_str()));
            self.status = Some(status);
        }
        if status.is_terminal() {
            self.pending
                .push_back(Event::default().event("end").data(status.as_str()));
            self.done = true;
        }
    }
}
