//! [`RecordWrites`]: a bell for each write of a followed task's record, from Redis's keyspace
//! notifications (`notify-keyspace-events` with `K` and `$`, or `A`): one subscriber
//! connection for them all, one channel (`__keyspace@DB__:task:ID`) a followed task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, ClientLike, EventInterface, PubsubInterface};
use task_state_core::{layout, Error, Result};
use tokio::sync::Notify;

use crate::errors::scrub;
use crate::expiry::{lock, notification_flags};
use crate::repository::RedisTaskRepository;

/// By record key: the followers' bell, and how many follow it.
type Bells = Arc<Mutex<HashMap<String, (Arc<Notify>, usize)>>>;

/// Whether `flags` publish keyspace events of string writes.
fn publishes_writes(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('$') || flags.contains('A'))
}

/// Bells rung at each write of the records being watched, for followers of a live log that
/// would otherwise poll (the console's live logs use it). Pub/sub keeps nothing: a write
/// while the subscriber reconnects rings no bell, so a follower still reads now and then.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::RecordWrites;
///
/// let writes = RecordWrites::connect(&repo).await?;
/// if let Some(bell) = writes.watch("7").await {
///     bell.notified().await; // task:7 was written
///     println!("{:?}", repo.get_raw("7").await?.map(|r| r.len()));
/// }
/// writes.unwatch("7").await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RecordWrites {
    client: SubscriberClient,
    database: u8,
    watched: Bells,
    /// Subscribes again after a reconnection.
    _resubscriber: tokio::task::JoinHandle<()>,
}

impl RecordWrites {
    /// Opens the subscriber on the writer's server.
    ///
    /// # Errors
    /// [`Error::Config`] on a Redis Cluster (its notifications are each node's own) or when
    /// `notify-keyspace-events` lacks `K` and `$` (or `A`); [`Error::Backend`] (or
    /// [`Error::Refused`]) when the flags cannot be read (managed services often forbid
    /// `CONFIG GET`) or the subscriber cannot connect within the connect timeout.
    pub async fn connect(repo: &RedisTaskRepository) -> Result<Self> {
        let settings = repo.settings();
        if repo.is_cluster() {
            return Err(Error::Config(
                "keyspace notifications of a Redis Cluster are each node's own".to_owned(),
            ));
        }
        let writer = repo.writer().next();
        let flags = notification_flags(repo, writer).await?;
        if !publishes_writes(&flags) {
            return Err(Error::Config(format!(
                "notify-keyspace-events is {flags:?}: record writes need K and $ (or A)"
            )));
        }
        let url = settings.write_url();
        let client = Builder::from_config(writer.client_config())
            .build_subscriber_client()
            .map_err(|e| Error::Config(scrub(&format!("{url}: {}", e.details()), &[url])))?;
        match tokio::time::timeout(settings.connect_timeout(), client.init()).await {
            Ok(Ok(_)) => {}
            _ => {
                let _ = client.quit().await;
                return Err(Error::backend(format!(
                    "cannot open a subscriber on {url} in time"
                )));
            }
        }
        // Subscribed again after a reconnection; what was written meanwhile a follower's
        // poll of last resort finds.
        let resubscriber = client.manage_subscriptions();
        let watched: Bells = Arc::default();
        ring_bells(&client, watched.clone());
        Ok(RecordWrites {
            client,
            database: url.database(),
            watched,
            _resubscriber: resubscriber,
        })
    }

    fn channel(&self, task_id: &str) -> String {
        format!(
            "__keyspace@{}__:{}",
            self.database,
            layout::record_key(task_id)
        )
    }

    /// A bell rung at every write of `task_id`'s record, until as many
    /// [`unwatch`](Self::unwatch) calls as `watch` calls; `None` when the subscription
    /// failed.
    pub async fn watch(&self, task_id: &str) -> Option<Arc<Notify>> {
        let channel = self.channel(task_id);
        let bell = {
            let mut watched = lock(&self.watched);
            let entry = watched
                .entry(layout::record_key(task_id))
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        match self.client.subscribe(channel.as_str()).await {
            Ok(()) => Some(bell),
            Err(e) => {
                tracing::debug!(error = %e, "subscribing to a followed record failed");
                self.unwatch(task_id).await;
                None
            }
        }
    }

    /// Stops ringing for `task_id` once no follower watches it.
    pub async fn unwatch(&self, task_id: &str) {
        let key = layout::record_key(task_id);
        let last = {
            let mut watched = lock(&self.watched);
            match watched.get_mut(&key) {
                Some(entry) if entry.1 > 1 => {
                    entry.1 -= 1;
                    false
                }
                Some(_) => {
                    watched.remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            let _ = self
                .client
                .unsubscribe(self.channel(task_id).as_str())
                .await;
        }
    }
}

/// Rings the bell of each record key that `client` hears of, until its events end.
fn ring_bells(client: &SubscriberClient, watched: Bells) {
    // fred gives keyspace messages as events, not as messages.
    let mut events = client.keyspace_event_rx();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let key = event.key.as_str_lossy();
                    let bell = lock(&watched).get(key.as_ref()).map(|(n, _)| n.clone());
                    if let Some(bell) = bell {
                        bell.notify_one();
                    }
                }
                // Missed messages: ring every bell, a read too many costs little.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for (bell, _) in lock(&watched).values() {
                        bell.notify_one();
                    }
                }
                Err(_) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn string_writes_need_k_and_dollar_or_a() {
        for (flags, yes) in [
            ("", false),
            ("Ex", false),
            ("K", false),
            ("K$", true),
            ("KA", true),
            ("AKE", true),
            ("E$", false),
        ] {
            assert_eq!(super::publishes_writes(flags), yes, "{flags:?}");
        }
    }
}
