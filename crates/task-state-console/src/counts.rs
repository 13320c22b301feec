//! The background count of the tasks: by service and status, and the most recently updated,
//! for the overview and `task_state_tasks`. It streams the store in batches, so no page view
//! and no scrape ever walks the store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use task_state_core::jiff::Timestamp;
use task_state_core::{
    Error, Result, Scope, TaskRecord, TaskRepository, TaskRepositoryExt, TaskStatus,
};

use crate::metrics::Metrics;

/// Records one round trip of the count reads.
pub(crate) const BATCH: usize = 500;
/// Tasks the overview lists as most recently updated.
pub(crate) const RECENT: usize = 10;

/// The tasks of one service, by status in [`TaskStatus::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatusCounts(pub(crate) [u64; TaskStatus::ALL.len()]);

impl StatusCounts {
    fn add(&mut self, status: TaskStatus) {
        if let Some(i) = TaskStatus::ALL.iter().position(|s| *s == status) {
            self.0[i] += 1;
        }
    }

    /// `(status, count)` in lifecycle order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskStatus, u64)> + '_ {
        TaskStatus::ALL.into_iter().zip(self.0.iter().copied())
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// One of the most recently updated tasks.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    pub(crate) task_id: String,
    pub(crate) service: String,
    pub(crate) user_id: String,
    pub(crate) status: TaskStatus,
    pub(crate) updated_at: String,
    at: Timestamp,
}

impl From<&TaskRecord> for Recent {
    fn from(r: &TaskRecord) -> Self {
        Recent {
            task_id: r.task_id.clone(),
            service: r.service.clone(),
            user_id: r.user_id.clone(),
            status: r.status,
            updated_at: r.updated_at.to_string(),
            at: r.updated_at.timestamp(),
        }
    }
}

/// One complete count.
#[derive(Debug, Clone)]
pub(crate) struct Counts {
    pub(crate) by_service: BTreeMap<String, StatusCounts>,
    pub(crate) unreadable: u64,
    /// Newest first.
    pub(crate) recent: Vec<Recent>,
    pub(crate) at: Timestamp,
    pub(crate) took: Duration,
}

impl Counts {
    pub(crate) fn total(&self) -> u64 {
        self.by_service.values().map(StatusCounts::total).sum()
    }
}

/// Whether a listing error is one bad record (counted, the count goes on) rather than a
/// failure of the listing (the count is abandoned).
fn is_one_bad_record(e: &Error) -> bool {
    match e {
        Error::Decode { .. } | Error::InvalidInput { .. } => true,
        Error::WrongType { key, .. } => !key.starts_with("index:"),
        _ => false,
    }
}

/// Counts every task, `BATCH` records a round trip.
///
/// # Errors
/// The first error that is not one unreadable record.
pub(crate) async fn count(repo: &dyn TaskRepository) -> Result<Counts> {
    let started = Instant::now();
    let mut by_service: BTreeMap<String, StatusCounts> = BTreeMap::new();
    let mut unreadable = 0;
    let mut recent: Vec<Recent> = Vec::with_capacity(RECENT + 1);
    let mut records = repo.stream(Scope::All, BATCH);
    while let Some(item) = records.next().await {
        let record = match item {
            Ok(record) => record,
            Err(e) if is_one_bad_record(&e) => {
                unreadable += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        match by_service.get_mut(&record.service) {
            Some(counts) => counts.add(record.status),
            None => {
                let mut counts = StatusCounts::default();
                counts.add(record.status);
                by_service.insert(record.service.clone(), counts);
            }
        }
        let at = record.updated_at.timestamp();
        if recent.len() < RECENT || recent.last().is_some_and(|last| at > last.at) {
            let place = recent.partition_point(|r| r.at >= at);
            recent.insert(place, Recent::from(&record));
            recent.truncate(RECENT);
        }
    }
    Ok(Counts {
        by_service,
        unreadable,
        recent,
        at: Timestamp::now(),
        took: started.elapsed(),
    })
}

/// Puts a count into the metrics. Every series is set before the series of services that are
/// gone (in `previous`, not in `counts`) are removed, so a scrape meanwhile never sees a
/// service without its numbers.
pub(crate) fn publish(metrics: &Metrics, previous: Option<&Counts>, counts: &Counts) {
    for (service, statuses) in &counts.by_service {
        for (status, n) in statuses.iter() {
            metrics
                .tasks
                .with_label_values(&[service.as_str(), status.as_str()])
                .set(n as f64);
        }
    }
    let gone = previous
        .into_iter()
        .flat_map(|p| p.by_service.keys())
        .filter(|service| !counts.by_service.contains_key(*service));
    for service in gone {
        for status in TaskStatus::ALL {
            let _ = metrics
                .tasks
                .remove_label_values(&[service.as_str(), status.as_str()]);
        }
    }
    metrics.unreadable.set(counts.unreadable as i64);
    metrics
        .refreshed_at
        .set(counts.at.as_millisecond() as f64 / 1000.0);
    metrics.refresh_seconds.set(counts.took.as_secs_f64());
}
