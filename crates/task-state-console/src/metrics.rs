//! `/metrics`: the Prometheus registry, the repository decorator that times every call, and
//! the collector of the janitor's counters.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use task_state_core::jiff::Timestamp;
use task_state_core::{Error, Result, Scope, TaskList, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::{ExpiryStats, Janitor, ReconcileStats};

/// Every metric the console exports, registered in one registry.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) tasks: GaugeVec,
    pub(crate) services: IntGauge,
    pub(crate) unreadable: IntGauge,
    pub(crate) refreshed_at: prometheus::Gauge,
    pub(crate) refresh_seconds: prometheus::Gauge,
    pub(crate) refresh_failures: IntCounter,
    pub(crate) operations: IntCounterVec,
    pub(crate) latency: HistogramVec,
    pub(crate) writes: IntCounterVec,
}

/// Latency buckets of repository calls, in seconds: from a local Redis's half millisecond to
/// the default command timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// The metric that `made` made, registered in `registry`.
fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<C>,
) -> C {
    let collector = made.expect("valid metric");
    registry
        .register(Box::new(collector.clone()))
        .expect("names are unique");
    collector
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let tasks = GaugeVec::new(
            Opts::new(
                "task_state_tasks",
                "Tasks in the store by service and status, as of the last background count",
            ),
            &["service", "status"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "task_state_repository_operation_duration_seconds",
                "How long the repository calls of this process took, by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        );
        Metrics {
            tasks: registered(r, tasks),
            services: registered(
                r,
                IntGauge::new(
                    "task_state_tasks_services",
                    "Services that the last background count found (task_state_tasks names the \
                     ones with the most tasks and sums the others under service=\":other\")",
                ),
            ),
            unreadable: registered(
                r,
                IntGauge::new(
                    "task_state_tasks_unreadable",
                    "Records that the last background count could not read",
                ),
            ),
            refreshed_at: registered(
                r,
                prometheus::Gauge::new(
                    "task_state_tasks_refresh_timestamp_seconds",
                    "When the last background count of the tasks ended (Unix time)",
                ),
            ),
            refresh_seconds: registered(
                r,
                prometheus::Gauge::new(
                    "task_state_tasks_refresh_duration_seconds",
                    "How long the last background count of the tasks took",
                ),
            ),
            refresh_failures: registered(
                r,
                IntCounter::new(
                    "task_state_tasks_refresh_failures_total",
                    "Background counts of the tasks that failed",
                ),
            ),
            operations: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "task_state_repository_operations_total",
                        "Repository calls this process made, by operation and outcome",
                    ),
                    &["operation", "outcome"],
                ),
            ),
            latency: registered(r, latency),
            writes: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "task_state_console_writes_total",
                        "Write actions asked of the console, by action and outcome",
                    ),
                    &["action", "outcome"],
                ),
            ),
            registry,
        }
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }

    pub(crate) fn add_janitor(&self, janitor: Arc<Janitor>) {
        self.registry
            .register(Box::new(JanitorCollector::new(janitor)))
            .expect("janitor metrics are registered once");
    }
}

/// The `outcome` label of a repository call.
fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::InvalidInput { .. }) => "invalid_input",
        Err(Error::NotFound { .. }) => "not_found",
        Err(Error::AlreadyExists { .. }) => "already_exists",
        Err(Error::Conflict { .. }) => "conflict",
        Err(Error::Decode { .. }) => "decode",
        Err(Error::WrongType { .. }) => "wrong_type",
        Err(Error::Refused { .. }) => "refused",
        Err(Error::Config(_)) => "config",
        Err(Error::Backend { .. }) => "backend",
        Err(_) => "other",
    }
}

/// A [`TaskRepository`] that counts and times every call of the one it wraps, in
/// `task_state_repository_operations_total` and
/// `task_state_repository_operation_duration_seconds`.
#[derive(Debug)]
pub(crate) struct MeteredRepository {
    inner: Arc<dyn TaskRepository>,
    metrics: Metrics,
}

impl MeteredRepository {
    pub(crate) fn new(inner: Arc<dyn TaskRepository>, metrics: Metrics) -> Self {
        MeteredRepository { inner, metrics }
    }

    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .latency
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .operations
            .with_label_values(&[operation, outcome(&result)])
            .inc();
        result
    }
}

#[async_trait]
impl TaskRepository for MeteredRepository {
    async fn save(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.observe("save", self.inner.save(record)).await
    }
    async fn create(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.observe("create", self.inner.create(record)).await
    }
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        self.observe("get", self.inner.get(task_id)).await
    }
    async fn delete(&self, task_id: &str) -> Result<bool> {
        self.observe("delete", self.inner.delete(task_id)).await
    }
    async fn set_status<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        let call = self.inner.set_status(task_id, status, log_entry);
        self.observe("set_status", call).await
    }
    async fn transition<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        let call = self.inner.transition(task_id, from, to, log_entry);
        self.observe("transition", call).await
    }
    async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>> {
        self.observe("append_log", self.inner.append_log(task_id, message))
            .await
    }
    async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool> {
        self.observe("append_logs", self.inner.append_logs(task_id, messages))
            .await
    }
    async fn update_result<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        let call = self
            .inner
            .update_result(task_id, pod_status, launcher_output);
        self.observe("update_result", call).await
    }
    async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>> {
        self.observe("set_jobs", self.inner.set_jobs(task_id, jobs))
            .await
    }
    async fn set_status_ack<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        let call = self.inner.set_status_ack(task_id, status, log_entry);
        self.observe("set_status_ack", call).await
    }
    async fn transition_ack<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        let call = self.inner.transition_ack(task_id, from, to, log_entry);
        self.observe("transition_ack", call).await
    }
    async fn append_log_ack(&self, task_id: &str, message: &str) -> Result<bool> {
        self.observe(
            "append_log_ack",
            self.inner.append_log_ack(task_id, message),
        )
        .await
    }
    async fn update_result_ack<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<bool> {
        let call = self
            .inner
            .update_result_ack(task_id, pod_status, launcher_output);
        self.observe("update_result_ack", call).await
    }
    async fn set_jobs_ack(&self, task_id: &str, jobs: &[String]) -> Result<bool> {
        self.observe("set_jobs_ack", self.inner.set_jobs_ack(task_id, jobs))
            .await
    }
    async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>> {
        self.observe("list_ids", self.inner.list_ids(scope)).await
    }
    async fn list_by_ids(&self, task_ids: &[String]) -> Result<TaskList> {
        self.observe("list_by_ids", self.inner.list_by_ids(task_ids))
            .await
    }
    async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>> {
        let call = self.inner.list_users_by_service(service);
        self.observe("list_users_by_service", call).await
    }
    async fn next_task_id(&self) -> Result<String> {
        self.observe("next_task_id", self.inner.next_task_id())
            .await
    }
    async fn peek_next_task_id(&self) -> Result<String> {
        self.observe("peek_next_task_id", self.inner.peek_next_task_id())
            .await
    }
    async fn list(&self, scope: &Scope) -> Result<TaskList> {
        self.observe("list", self.inner.list(scope)).await
    }
}

/// The expiry listener's and the reconciler's counters, read from the janitor at each
/// scrape (they are its own totals since it started).
struct JanitorCollector {
    janitor: Arc<Janitor>,
    descs: Vec<Desc>,
}

/// One metric of the janitor: its name, help, type, and how to read it off the counters.
struct JanitorMetric {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: fn(&ExpiryStats, &ReconcileStats) -> f64,
}

/// Unix time in seconds, 0 for never.
fn unix_seconds(at: Option<Timestamp>) -> f64 {
    at.map_or(0.0, |at| at.as_millisecond() as f64 / 1000.0)
}

const fn counter(
    name: &'static str,
    help: &'static str,
    value: fn(&ExpiryStats, &ReconcileStats) -> f64,
) -> JanitorMetric {
    JanitorMetric {
        name,
        help,
        kind: MetricType::COUNTER,
        value,
    }
}

const fn gauge(
    name: &'static str,
    help: &'static str,
    value: fn(&ExpiryStats, &ReconcileStats) -> f64,
) -> JanitorMetric {
    JanitorMetric {
        name,
        help,
        kind: MetricType::GAUGE,
        value,
    }
}

const JANITOR_METRICS: [JanitorMetric; 11] = [
    counter(
        "task_state_expiry_messages_total",
        "Expired-key events the listener received",
        |s, _| s.messages as f64,
    ),
    counter(
        "task_state_expiry_task_messages_total",
        "Expired-key events for task records",
        |s, _| s.task_messages as f64,
    ),
    counter(
        "task_state_expiry_cleanups_total",
        "Expired tasks whose index entries the listener cleaned",
        |s, _| s.cleanups as f64,
    ),
    counter(
        "task_state_expiry_metadata_missing_total",
        "Expired tasks whose metadata hash was gone too",
        |s, _| s.metadata_missing as f64,
    ),
    counter(
        "task_state_expiry_failures_total",
        "Cleanups of expired tasks that failed",
        |s, _| s.failures as f64,
    ),
    counter(
        "task_state_expiry_reconnects_total",
        "Reconnections of the listener's subscriber",
        |s, _| s.reconnects as f64,
    ),
    counter(
        "task_state_expiry_lagged_total",
        "Expired-key events lost because the listener fell behind",
        |s, _| s.lagged as f64,
    ),
    gauge(
        "task_state_expiry_last_message_timestamp_seconds",
        "When the last expired-key event arrived (Unix time; 0 before the first)",
        |s, _| unix_seconds(s.last_message_at),
    ),
    counter(
        "task_state_reconcile_runs_total",
        "Reconciler sweeps run",
        |_, r| r.runs as f64,
    ),
    counter(
        "task_state_reconcile_members_removed_total",
        "Index members the reconciler removed",
        |_, r| r.members_removed as f64,
    ),
    gauge(
        "task_state_reconcile_last_run_timestamp_seconds",
        "When the last reconciler sweep ended (Unix time; 0 before the first)",
        |_, r| unix_seconds(r.last_run_at),
    ),
];

impl JanitorCollector {
    fn new(janitor: Arc<Janitor>) -> Self {
        let descs = JANITOR_METRICS
            .iter()
            .map(|m| {
                Desc::new(
                    m.name.to_owned(),
                    m.help.to_owned(),
                    vec![],
                    Default::default(),
                )
                .expect("valid metric")
            })
            .collect();
        JanitorCollector { janitor, descs }
    }
}

impl std::fmt::Debug for JanitorCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanitorCollector").finish_non_exhaustive()
    }
}

impl Collector for JanitorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (stats, sweeps) = (self.janitor.stats(), self.janitor.reconcile_stats());
        JANITOR_METRICS
            .iter()
            .map(|m| {
                let value = (m.value)(&stats, &sweeps);
                let mut metric = Metric::default();
                if m.kind == MetricType::COUNTER {
                    let mut counter = Counter::default();
                    counter.set_value(value);
                    metric.set_counter(counter);
                } else {
                    let mut gauge = Gauge::default();
                    gauge.set_value(value);
                    metric.set_gauge(gauge);
                }
                let mut family = MetricFamily::default();
                family.set_name(m.name.to_owned());
                family.set_help(m.help.to_owned());
                family.set_field_type(m.kind);
                family.set_metric(vec![metric]);
                family
            })
            .collect()
    }
}
