//! The background count of the tasks: by service and status, and the most recently updated,
//! for the overview and `task_state_tasks`. It streams the store in batches, so no page view
//! and no scrape ever walks the store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use task_state_core::jiff::Timestamp;
use task_state_core::{
    layout, Error, Result, Scope, TaskRecord, TaskRepository, TaskRepositoryExt, TaskStatus,
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
    pub(crate) at: Timestamp,
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

/// Minutes the throughput covers, up to the count.
pub(crate) const MINUTES: usize = 60;

/// Tasks created and tasks that reached a final status in each of the [`MINUTES`] minutes
/// before a count, oldest first, as the records' `created_at` and `updated_at` tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Throughput {
    /// The end of the last minute.
    pub(crate) until: Timestamp,
    pub(crate) created: [u64; MINUTES],
    /// Completed, failed or cancelled, by the time of their last update.
    pub(crate) finished: [u64; MINUTES],
}

impl Throughput {
    fn new(until: Timestamp) -> Self {
        Throughput {
            until,
            created: [0; MINUTES],
            finished: [0; MINUTES],
        }
    }

    /// The minute `at` falls in, when it is within the last hour before `until`.
    fn minute(&self, at: Timestamp) -> Option<usize> {
        let back = self.until.as_second() - at.as_second();
        if !(0..(MINUTES as i64) * 60).contains(&back) {
            return None;
        }
        Some(MINUTES - 1 - (back / 60) as usize)
    }

    fn add(&mut self, record: &TaskRecord) {
        if let Some(m) = self.minute(record.created_at.timestamp()) {
            self.created[m] += 1;
        }
        if record.status.is_terminal() {
            if let Some(m) = self.minute(record.updated_at.timestamp()) {
                self.finished[m] += 1;
            }
        }
    }
}

/// One complete count.
#[derive(Debug, Clone)]
pub(crate) struct Counts {
    pub(crate) by_service: BTreeMap<String, StatusCounts>,
    pub(crate) throughput: Throughput,
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

    /// Tasks with `status`, in `service` or in all services.
    pub(crate) fn with_status(&self, service: Option<&str>, status: TaskStatus) -> u64 {
        let of = |counts: &StatusCounts| {
            counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| n)
        };
        match service {
            Some(service) => self.by_service.get(service).map_or(0, of),
            None => self.by_service.values().map(of).sum(),
        }
    }

    /// The `top` services with the most tasks (ties by name), by name, and the tasks of all
    /// the others summed (`None` when there are no others).
    pub(crate) fn top(&self, top: usize) -> (Vec<(&str, &StatusCounts)>, Option<StatusCounts>) {
        let mut by_total: Vec<(&str, &StatusCounts)> = self
            .by_service
            .iter()
            .map(|(service, counts)| (service.as_str(), counts))
            .collect();
        by_total.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(b.0)));
        let rest = (by_total.len() > top).then(|| {
            let mut sum = StatusCounts::default();
            for (_, counts) in &by_total[top..] {
                for (n, add) in sum.0.iter_mut().zip(counts.0) {
                    *n += add;
                }
            }
            sum
        });
        by_total.truncate(top);
        by_total.sort_by(|a, b| a.0.cmp(b.0));
        (by_total, rest)
    }

    /// The service labels [`publish`] gives `task_state_tasks` with the top `top`.
    fn labels(&self, top: usize) -> Vec<&str> {
        let (services, rest) = self.top(top);
        let mut labels: Vec<&str> = services.into_iter().map(|(s, _)| s).collect();
        labels.extend(rest.map(|_| OTHER_SERVICES));
        labels
    }
}

/// The `service` label of the tasks of the services beyond the top ones in
/// `task_state_tasks`: no service is named so, since no name holds a `:`.
pub(crate) const OTHER_SERVICES: &str = ":other";

/// Whether a listing error is one bad record (counted, the count goes on) rather than a
/// failure of the listing (the count is abandoned).
fn is_one_bad_record(e: &Error) -> bool {
    match e {
        Error::Decode { .. } | Error::InvalidInput { .. } => true,
        Error::WrongType { key, .. } => !layout::is_index_key(key),
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
    let mut throughput = Throughput::new(Timestamp::now());
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
        throughput.add(&record);
        let at = record.updated_at.timestamp();
        if recent.len() < RECENT || recent.last().is_some_and(|last| at > last.at) {
            let place = recent.partition_point(|r| r.at >= at);
            recent.insert(place, Recent::from(&record));
            recent.truncate(RECENT);
        }
    }
    Ok(Counts {
        by_service,
        throughput,
        unreadable,
        recent,
        at: Timestamp::now(),
        took: started.elapsed(),
    })
}

/// Puts a count into the metrics: the `top` services with the most tasks under their names,
/// the others summed under [`OTHER_SERVICES`], so that the series stay bounded however many
/// services there are. Every series is set before the series that are gone (published for
/// `previous`, not for `counts`) are removed, so a scrape meanwhile never sees a service
/// without its numbers.
pub(crate) fn publish(metrics: &Metrics, previous: Option<&Counts>, counts: &Counts, top: usize) {
    let (services, rest) = counts.top(top);
    let labelled = services
        .into_iter()
        .chain(rest.as_ref().map(|rest| (OTHER_SERVICES, rest)));
    for (service, statuses) in labelled {
        for (status, n) in statuses.iter() {
            metrics
                .tasks
                .with_label_values(&[service, status.as_str()])
                .set(n as f64);
        }
    }
    let now = counts.labels(top);
    let before = previous.map(|p| p.labels(top)).unwrap_or_default();
    for service in before.into_iter().filter(|s| !now.contains(s)) {
        for status in TaskStatus::ALL {
            let _ = metrics
                .tasks
                .remove_label_values(&[service, status.as_str()]);
        }
    }
    metrics.services.set(counts.by_service.len() as i64);
    metrics.unreadable.set(counts.unreadable as i64);
    metrics
        .refreshed_at
        .set(counts.at.as_millisecond() as f64 / 1000.0);
    metrics.refresh_seconds.set(counts.took.as_secs_f64());
}
