//! What the Redis backend tells a tracing subscriber: a span per repository operation with
//! its task id and script, and events for connecting, losing and regaining the connection,
//! and reloading a script the server lost.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip, topology_or_skip};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span or an event, with its fields as text.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    level: String,
    fields: BTreeMap<String, String>,
    /// For an event: the names of the spans around it, innermost first.
    scope: Vec<String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every span (with the fields recorded later) and every event.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

/// A span's index in `Collector::spans`, kept in the registry's extensions.
struct Index(usize);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        spans.push(Seen {
            name: attrs.metadata().name().to_owned(),
            level: attrs.metadata().level().to_string(),
            fields: fields.0,
            scope: Vec::new(),
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            if let Some(Index(i)) = span.extensions().get::<Index>() {
                self.spans.lock().unwrap()[*i].fields.extend(fields.0);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .map(|scope| scope.map(|span| span.name().to_owned()).collect())
            .unwrap_or_default();
        self.events.lock().unwrap().push(Seen {
            name: event.metadata().name().to_owned(),
            level: event.metadata().level().to_string(),
            fields: fields.0,
            scope,
        });
    }
}

impl Collector {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn spans_named(&self, name: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    fn events_saying(&self, words: &str) -> Vec<Seen> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.fields.get("message").is_some_and(|m| m.contains(words)))
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn set_status_is_a_span_with_its_task_id_script_and_duration() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let collector = Collector::default();
    let _guard = collector.install();
    let repo = common::connect(&server).await;
    repo.save(TaskRecord::new("7", "render", "alice", TaskStatus::Pending))
        .await
        .unwrap();
    repo.set_status("7", TaskStatus::Running, Some("started"))
        .await
        .unwrap();

    let spans = collector.spans_named("set_status");
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.fields.get("task_id").map(String::as_str), Some("7"));
    assert_eq!(
        span.fields.get("status").map(String::as_str),
        Some("running")
    );
    assert_eq!(
        span.fields.get("script").map(String::as_str),
        Some("set_status")
    );
    let elapsed: f64 = span.fields["elapsed_ms"].parse().unwrap();
    assert!(elapsed > 0.0, "{span:?}");
    assert_eq!(span.level, "INFO");

    let saves = collector.spans_named("save");
    assert_eq!(saves.len(), 1, "{saves:?}");
    assert_eq!(
        saves[0].fields.get("script").map(String::as_str),
        Some("save")
    );

    // The first mutation settles the write path, inside its span.
    let settled = collector.events_saying("mutations write with WATCH");
    assert!(
        settled
            .iter()
            .any(|e| e.scope.first().map(String::as_str) == Some("save")),
        "{settled:?}"
    );
    // A server that lost the scripts (a restart without persistence): the next script met
    // NOSCRIPT (EVALSHA, Redis 6.2) or "Function not found" (FCALL) and loaded them, inside
    // the operation's span.
    // (A save that moves the task to another owner runs its script.)
    server.cli(&["FUNCTION", "FLUSH"]);
    server.cli(&["SCRIPT", "FLUSH"]);
    repo.save(TaskRecord::new("7", "train", "bob", TaskStatus::Running))
        .await
        .unwrap();
    let mut reloads = collector.events_saying("NOSCRIPT");
    reloads.extend(collector.events_saying("Function not found"));
    assert!(
        reloads.iter().any(
            |e| e.fields.get("script").map(String::as_str) == Some("save")
                && e.scope.first().map(String::as_str) == Some("save")
        ),
        "{reloads:?}"
    );
    let connected = collector.events_saying("connected to Redis");
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert!(connected[0].fields["url"].contains(&server.port().to_string()));
    repo.close().await;
    assert!(
        collector
            .events_saying("connection to Redis lost")
            .is_empty(),
        "closing is no lost connection"
    );
}

#[tokio::test]
async fn a_failed_operation_says_why_in_its_span() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let collector = Collector::default();
    let _guard = collector.install();
    let repo = common::connect(&server).await;
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Completed))
        .await
        .unwrap();
    let err = repo
        .transition("1", &[TaskStatus::Pending], TaskStatus::Running, None)
        .await
        .unwrap_err();
    let events = collector.events.lock().unwrap().clone();
    let error = events
        .iter()
        .find(|e| {
            e.scope.first().map(String::as_str) == Some("transition")
                && e.fields.contains_key("error")
        })
        .unwrap_or_else(|| panic!("no error event in the span: {events:?}"));
    assert_eq!(error.level, "DEBUG");
    assert_eq!(error.fields["error"], err.to_string());
}

#[tokio::test]
async fn losing_and_regaining_the_connection_are_logged() {
    let Some(mut server) = server_or_skip() else {
        return;
    };
    let collector = Collector::default();
    let _guard = collector.install();
    let watched = common::connect(&server).await;
    server.kill();
    let mut lost = Vec::new();
    for _ in 0..100 {
        lost = collector.events_saying("connection to Redis lost");
        if !lost.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lost.len(), 1, "one warning per outage: {lost:?}");
    assert_eq!(lost[0].level, "WARN");
    server.restart().unwrap();
    let mut back = Vec::new();
    for _ in 0..200 {
        back = collector.events_saying("reconnected to Redis");
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].level, "INFO");
    assert!(back[0].fields.contains_key("down_ms"), "{back:?}");
    watched
        .save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    watched.close().await;
}

#[tokio::test]
async fn a_failover_is_logged_with_the_old_and_the_new_primary() {
    let Some(mut topology) = topology_or_skip(&[], None) else {
        return;
    };
    topology
        .wait_ready(Duration::from_secs(20))
        .expect("the sentinels are ready");
    let collector = Collector::default();
    let _guard = collector.install();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(topology.sentinel_url())
        .with_connect_timeout(Duration::from_secs(2))
        .with_command_timeout(Duration::from_secs(2))
        .with_pool_size(1)
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    let (old, new) = (topology.primary.port(), topology.replica.port());
    topology.primary.kill();
    // On this (current-thread) runtime, so that fred's tasks log to the collector meanwhile.
    let (topology, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = topology.wait_for_primary(new, Duration::from_secs(30));
        (topology, promoted)
    })
    .await
    .unwrap();
    assert!(promoted, "Sentinel did not promote the replica");
    let mut saved = false;
    for _ in 0..100 {
        let record = TaskRecord::new("1", "s", "u", TaskStatus::Pending);
        if repo.save(record).await.is_ok() {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved, "no write on the new primary");
    let failovers = collector.events_saying("another server than before");
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    let failover = &failovers[0];
    assert_eq!(failover.level, "WARN");
    assert!(
        failover.fields["from"].ends_with(&format!(":{old}")),
        "{failover:?}"
    );
    assert!(
        failover.fields["to"].ends_with(&format!(":{new}")),
        "{failover:?}"
    );
    repo.close().await;
    drop(topology);
}
