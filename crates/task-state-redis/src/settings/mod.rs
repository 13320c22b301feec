//! Connection settings: `DMS_*` variables or a builder.
//!
//! The variables and the checked settings live here; [`builder`] reads and checks them,
//! [`write_path`] names the ways a mutation may write.

mod builder;
#[cfg(test)]
mod tests;
mod write_path;

use std::fmt;
use std::time::Duration;

use task_state_core::{JobsField, Result, Zone};

pub use builder::RedisRepositorySettingsBuilder;
pub use write_path::{KeptRecords, WritePath};

pub use crate::redis_url::RedisUrl;

/// The variable that names the Redis URL for writes (and reads, without a read URL).
pub const WRITE_URL_VAR: &str = "DMS_REDIS_WRITE_URL";

/// The variable that names the Redis URL for reads.
pub const READ_URL_VAR: &str = "DMS_REDIS_READ_URL";

/// The variable that sets the TTL of records and indexes, in seconds.
pub const TTL_VAR: &str = "DMS_REDIS_TASK_TTL_SECONDS";

/// The variable that names the IANA time zone of timestamps.
pub use task_state_core::TIMEZONE_VAR;

/// The variable that names a PEM file of CA certificates to trust for `rediss://` (instead of
/// the system's), for servers with a private CA.
pub const TLS_CA_FILE_VAR: &str = "DMS_REDIS_TLS_CA_FILE";

/// The variable that sets how often the provider's reconciler sweeps the indexes, in
/// seconds (default 300; `0` turns the reconciler off).
pub const RECONCILE_INTERVAL_VAR: &str = "DMS_REDIS_RECONCILE_INTERVAL_SECONDS";

/// The variable that says whether the provider refuses to start when the server does not
/// publish expired-key events (`true`, the default) or only warns (`false`).
pub const REQUIRE_NOTIFICATIONS_VAR: &str = "DMS_REDIS_REQUIRE_KEYEVENT_NOTIFICATIONS";

/// The variable that chooses how mutations write: `auto` (the default), `script`, `watch` or
/// `ifeq` (see [`WritePath`]).
pub const WRITE_PATH_VAR: &str = "DMS_REDIS_WRITE_PATH";

/// The reconciler's interval when none is configured: 300 s.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

/// The TTL when none is configured: 90 days.
pub use task_state_core::layout::DEFAULT_TTL_SECONDS;

/// Everything the Redis backend needs to connect, checked.
///
/// ```
/// use task_state_redis::RedisRepositorySettings;
/// let settings = RedisRepositorySettings::builder()
///     .with_write_url("redis://:pw@primary:6379/0")
///     .with_read_url("redis://:pw@replica:6379/0")
///     .with_ttl_seconds(3600)
///     .with_timezone("Europe/Berlin")
///     .build()
///     .unwrap();
/// assert_eq!(settings.ttl_seconds(), 3600);
/// assert!(!format!("{settings:?}").contains("pw@"));
/// ```
#[derive(Clone)]
pub struct RedisRepositorySettings {
    pub(super) write_url: RedisUrl,
    pub(super) read_url: RedisUrl,
    pub(super) ttl_seconds: u64,
    pub(super) zone: Zone,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) pool_size: usize,
    pub(super) tls_ca_file: Option<std::path::PathBuf>,
    pub(super) jobs_field: JobsField,
    pub(super) reconcile_interval: Duration,
    pub(super) require_notifications: bool,
    pub(super) write_path: WritePath,
    pub(super) kept_records: KeptRecords,
}

impl RedisRepositorySettings {
    /// A builder with the defaults and no URL.
    pub fn builder() -> RedisRepositorySettingsBuilder {
        RedisRepositorySettingsBuilder::default()
    }

    /// Reads `DMS_REDIS_WRITE_URL` (required), `DMS_REDIS_READ_URL` (default: the write
    /// URL), `DMS_REDIS_TASK_TTL_SECONDS` (default 7776000), `DMS_TIMEZONE` (default
    /// `Asia/Seoul`), `DMS_REDIS_TLS_CA_FILE`, and for the provider
    /// `DMS_REDIS_RECONCILE_INTERVAL_SECONDS` (default 300) and
    /// `DMS_REDIS_REQUIRE_KEYEVENT_NOTIFICATIONS` (default `true`).
    ///
    /// # Errors
    /// [`Error::Config`](task_state_core::Error::Config) naming the variable that is missing or wrong.
    pub fn from_env() -> Result<Self> {
        RedisRepositorySettingsBuilder::from_env().build()
    }

    /// The URL for writes.
    pub fn write_url(&self) -> &RedisUrl {
        &self.write_url
    }

    /// The URL for reads.
    pub fn read_url(&self) -> &RedisUrl {
        &self.read_url
    }

    /// The TTL of records and indexes, in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// The time zone of timestamps.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// How long connecting may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long one command may take, reconnection waits included.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// What the write path's connections keep of the records they write ([`KeptRecords`]).
    pub fn kept_records(&self) -> KeptRecords {
        self.kept_records
    }

    /// Connections in each of the writer and reader pools.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The PEM file of CA certificates trusted for `rediss://`, when not the system's.
    pub fn tls_ca_file(&self) -> Option<&std::path::Path> {
        self.tls_ca_file.as_deref()
    }

    /// The name of the job list in records this repository creates (`DMS_TASK_JOBS_FIELD`).
    pub fn jobs_field(&self) -> JobsField {
        self.jobs_field
    }

    /// How often the provider's reconciler sweeps the indexes; zero when it is off.
    pub fn reconcile_interval(&self) -> Duration {
        self.reconcile_interval
    }

    /// Whether the provider refuses to start when the server does not publish expired-key
    /// events (`notify-keyspace-events` without `E` and `x` or `A`), or only warns.
    pub fn require_keyevent_notifications(&self) -> bool {
        self.require_notifications
    }

    /// How mutations write records ([`WritePath`]; default [`WritePath::Auto`]).
    pub fn write_path(&self) -> WritePath {
        self.write_path
    }
}

impl fmt::Debug for RedisRepositorySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRepositorySettings")
            .field("write_url", &self.write_url)
            .field("read_url", &self.read_url)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("zone", &self.zone)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("jobs_field", &self.jobs_field)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("require_notifications", &self.require_notifications)
            .field("write_path", &self.write_path)
            .field("kept_records", &self.kept_records)
            .finish()
    }
}
