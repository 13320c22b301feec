//! Connection settings: `DMS_*` variables or a builder.

use std::fmt;
use std::time::Duration;

use task_state_core::layout::MAX_TTL_SECONDS;
use task_state_core::{Error, JobsField, Result, Zone, DEFAULT_TIMEZONE};

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
/// The reconciler's interval when none is configured: 300 s.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);
/// The TTL when none is configured: 90 days.
pub use task_state_core::layout::DEFAULT_TTL_SECONDS;

/// A Redis URL whose password never shows: `Display` and `Debug` print `***` in its place.
///
/// ```
/// use task_state_redis::RedisUrl;
/// let url = RedisUrl::parse("redis://worker:s3cret@cache:6379/2").unwrap();
/// assert_eq!(url.to_string(), "redis://worker:***@cache:6379/2");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert_eq!(url.database(), 2);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: url::Url,
}

impl RedisUrl {
    /// Checks and keeps a URL of the form `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://` for TLS, or `redis-sentinel://` (`rediss-sentinel://`) for the primary
    /// that Sentinel names:
    /// `redis-sentinel://[user[:password]@]sentinel[:port][/db]?sentinelServiceName=NAME[&node=host:port]…`
    /// (see `docs/high-availability.md`), or `redis-cluster://` (`rediss-cluster://`) for a
    /// Redis Cluster: `redis-cluster://[user[:password]@]node:port[?node=host:port]…`, every
    /// host a seed node (see `docs/cluster.md`).
    ///
    /// ```
    /// use task_state_redis::RedisUrl;
    /// let url = RedisUrl::parse("redis-cluster://:pw@10.0.0.1:7000?node=10.0.0.2:7000").unwrap();
    /// assert!(url.is_cluster());
    /// assert_eq!(url.to_string(), "redis-cluster://:***@10.0.0.1:7000?node=10.0.0.2:7000");
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for an empty or malformed URL, one without a scheme (the message
    /// suggests `redis://host:port`), another scheme, a bad database
    /// number, a Sentinel URL without `sentinelServiceName`, a cluster URL with a database
    /// other than 0 or without a port, or `rediss://` when TLS
    /// support is not compiled in. The message never
    /// contains the password.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Config("the Redis URL is empty".to_owned()));
        }
        // `host:port` alone would parse as a URL of scheme `host`, or not at all; the text
        // is not echoed because it may carry a password.
        if !text.contains("://") {
            return Err(Error::Config(
                "the Redis URL has no scheme: write it as redis://host:port (or rediss://, redis-sentinel://, redis-cluster://)"
                    .to_owned(),
            ));
        }
        let url = url::Url::parse(text)
            .map_err(|e| Error::Config(format!("malformed Redis URL: {e}")))?;
        let shown = RedisUrl { url: url.clone() }.to_string();
        match url.scheme() {
            "redis" | "redis-sentinel" | "redis-cluster" => {}
            "rediss" | "rediss-sentinel" | "rediss-cluster" if cfg!(feature = "tls") => {}
            "rediss" | "rediss-sentinel" | "rediss-cluster" => {
                return Err(Error::Config(format!(
                    "{shown}: rediss:// needs TLS support, which this build lacks (feature `tls`)"
                )))
            }
            other => {
                return Err(Error::Config(format!(
                    "{shown}: scheme {other:?} is not redis://, rediss://, redis-sentinel:// or redis-cluster://"
                )))
            }
        }
        if url.host_str().unwrap_or("").is_empty() {
            return Err(Error::Config(format!("{shown}: no host")));
        }
        if url.scheme().ends_with("-sentinel")
            && !url
                .query_pairs()
                .any(|(k, v)| k == "sentinelServiceName" && !v.is_empty())
        {
            return Err(Error::Config(format!(
                "{shown}: a Sentinel URL needs ?sentinelServiceName=<the monitored name>"
            )));
        }
        if url.scheme().ends_with("-cluster") {
            if url.port().is_none() {
                return Err(Error::Config(format!(
                    "{shown}: a cluster URL needs the port of its seed node"
                )));
            }
            let path = url.path().trim_matches('/');
            if !path.is_empty() && path != "0" {
                return Err(Error::Config(format!(
                    "{shown}: a Redis Cluster has only database 0"
                )));
            }
        }
        let parsed = RedisUrl { url };
        let path = parsed.url.path().trim_matches('/');
        if !path.is_empty()
            && path.parse::<u8>().is_err()
            && !parsed.url.scheme().ends_with("-sentinel")
        {
            return Err(Error::Config(format!(
                "{shown}: database {path:?} is not a number"
            )));
        }
        Ok(parsed)
    }

    /// The logical database (`/N`), 0 by default.
    pub fn database(&self) -> u8 {
        self.url.path().trim_matches('/').parse().unwrap_or(0)
    }

    /// True for `rediss://` and `rediss-sentinel://`.
    pub fn is_tls(&self) -> bool {
        self.url.scheme().starts_with("rediss")
    }

    /// True for `redis-sentinel://` and `rediss-sentinel://`: the server is the primary
    /// that Sentinel names, found again after a failover.
    pub fn is_sentinel(&self) -> bool {
        self.url.scheme().ends_with("-sentinel")
    }

    /// True for `redis-cluster://` and `rediss-cluster://`: a Redis Cluster, reached
    /// through its seed nodes.
    pub fn is_cluster(&self) -> bool {
        self.url.scheme().ends_with("-cluster")
    }

    /// The full URL, password included, for handing to the client library only.
    pub(crate) fn expose(&self) -> &str {
        self.url.as_str()
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        // Sentinel URLs may carry a sentinelPassword in the query.
        if shown
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("password"))
        {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.to_ascii_lowercase().contains("password") {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

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
    write_url: RedisUrl,
    read_url: RedisUrl,
    ttl_seconds: u64,
    zone: Zone,
    connect_timeout: Duration,
    command_timeout: Duration,
    pool_size: usize,
    tls_ca_file: Option<std::path::PathBuf>,
    jobs_field: JobsField,
    reconcile_interval: Duration,
    require_notifications: bool,
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
    /// [`Error::Config`] naming the variable that is missing or wrong.
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
            .finish()
    }
}

/// Builds [`RedisRepositorySettings`]; every value is checked in [`build`](Self::build).
#[derive(Clone)]
pub struct RedisRepositorySettingsBuilder {
    write_url: Option<String>,
    read_url: Option<String>,
    ttl: Option<String>,
    timezone: Option<String>,
    connect_timeout: Duration,
    command_timeout: Duration,
    pool_size: usize,
    tls_ca_file: Option<std::path::PathBuf>,
    jobs_field: Option<String>,
    reconcile_interval: Option<String>,
    require_notifications: Option<String>,
}

impl Default for RedisRepositorySettingsBuilder {
    fn default() -> Self {
        RedisRepositorySettingsBuilder {
            write_url: None,
            read_url: None,
            ttl: None,
            timezone: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            pool_size: 4,
            tls_ca_file: None,
            jobs_field: None,
            reconcile_interval: None,
            require_notifications: None,
        }
    }
}

impl RedisRepositorySettingsBuilder {
    /// A builder filled from the `DMS_*` variables; unset ones keep their defaults.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// A builder filled by `lookup(variable name)`, for tests and other configuration sources.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let present = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        RedisRepositorySettingsBuilder {
            write_url: present(WRITE_URL_VAR),
            read_url: present(READ_URL_VAR),
            ttl: present(TTL_VAR),
            timezone: present(TIMEZONE_VAR),
            tls_ca_file: present(TLS_CA_FILE_VAR).map(Into::into),
            jobs_field: present(JobsField::VAR),
            reconcile_interval: present(RECONCILE_INTERVAL_VAR),
            require_notifications: present(REQUIRE_NOTIFICATIONS_VAR),
            ..Self::default()
        }
    }

    /// The URL for writes (and reads, unless a read URL is set).
    pub fn with_write_url(mut self, url: impl Into<String>) -> Self {
        self.write_url = Some(url.into());
        self
    }

    /// The URL for reads, such as a read-only replica.
    pub fn with_read_url(mut self, url: impl Into<String>) -> Self {
        self.read_url = Some(url.into());
        self
    }

    /// The TTL of records and indexes, in seconds.
    pub fn with_ttl_seconds(mut self, seconds: u64) -> Self {
        self.ttl = Some(seconds.to_string());
        self
    }

    /// The IANA time zone of timestamps.
    pub fn with_timezone(mut self, name: impl Into<String>) -> Self {
        self.timezone = Some(name.into());
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take, waits for a reconnection included (default 10 s).
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Connections in each of the writer and reader pools (default 4).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// A PEM file of CA certificates to trust for `rediss://` instead of the system's.
    pub fn with_tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// The name of the job list in records this repository creates (default `jobs`).
    pub fn with_jobs_field(mut self, field: JobsField) -> Self {
        self.jobs_field = Some(field.as_str().to_owned());
        self
    }

    /// How often the provider's reconciler sweeps the indexes (default 300 s; zero turns it
    /// off). Whole seconds count; a fraction is dropped.
    pub fn with_reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = Some(interval.as_secs().to_string());
        self
    }

    /// Whether the provider refuses to start without expired-key events (default `true`);
    /// `false` starts it with a warning, for managed servers that forbid `CONFIG GET`.
    pub fn with_require_keyevent_notifications(mut self, required: bool) -> Self {
        self.require_notifications = Some(required.to_string());
        self
    }

    /// Checks everything.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable or setting that is missing or wrong.
    pub fn build(self) -> Result<RedisRepositorySettings> {
        let write = self
            .write_url
            .ok_or_else(|| Error::Config(format!("{WRITE_URL_VAR} is required")))?;
        let write_url = RedisUrl::parse(&write)
            .map_err(|e| Error::Config(format!("{WRITE_URL_VAR}: {}", strip(e))))?;
        let read_url = match self.read_url {
            Some(read) => RedisUrl::parse(&read)
                .map_err(|e| Error::Config(format!("{READ_URL_VAR}: {}", strip(e))))?,
            None => write_url.clone(),
        };
        if write_url.is_cluster() != read_url.is_cluster() {
            return Err(Error::Config(format!(
                "{READ_URL_VAR}: {read_url} and {WRITE_URL_VAR}: {write_url} must both be \
                 redis-cluster:// URLs or neither: a cluster's keys live on several primaries"
            )));
        }
        let ttl_seconds = match self.ttl {
            None => DEFAULT_TTL_SECONDS,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if n > 0 && n <= MAX_TTL_SECONDS => n,
                _ => {
                    return Err(Error::Config(format!(
                        "{TTL_VAR}: {text:?} is not a whole number of seconds from 1 to \
                         {MAX_TTL_SECONDS} (100 years)"
                    )))
                }
            },
        };
        let jobs_field = match self.jobs_field {
            None => JobsField::default(),
            Some(text) => text.parse().map_err(|_| {
                Error::Config(format!(
                    "{}: {text:?} is neither jobs nor active_jobs",
                    JobsField::VAR
                ))
            })?,
        };
        let zone_name = self.timezone.unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned());
        let zone = Zone::named(zone_name.trim())
            .map_err(|e| Error::Config(format!("{TIMEZONE_VAR}: {}", strip(e))))?;
        if self.pool_size == 0 {
            return Err(Error::Config("the pool size must be at least 1".to_owned()));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(Error::Config(
                "timeouts must be longer than zero".to_owned(),
            ));
        }
        if let Some(path) = &self.tls_ca_file {
            if !cfg!(feature = "tls") {
                return Err(Error::Config(format!(
                    "{TLS_CA_FILE_VAR}: TLS support is not built in (feature `tls`)"
                )));
            }
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "{TLS_CA_FILE_VAR}: {} is not a readable file",
                    path.display()
                )));
            }
        }
        let reconcile_interval = match self.reconcile_interval {
            None => DEFAULT_RECONCILE_INTERVAL,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if n <= u64::from(u32::MAX) => Duration::from_secs(n),
                _ => {
                    return Err(Error::Config(format!(
                        "{RECONCILE_INTERVAL_VAR}: {text:?} is not a whole number of seconds \
                         (0 turns the reconciler off)"
                    )))
                }
            },
        };
        let require_notifications = match self.require_notifications {
            None => true,
            Some(text) => parse_flag(&text).ok_or_else(|| {
                Error::Config(format!(
                    "{REQUIRE_NOTIFICATIONS_VAR}: {text:?} is not true or false"
                ))
            })?,
        };
        Ok(RedisRepositorySettings {
            write_url,
            read_url,
            ttl_seconds,
            zone,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            pool_size: self.pool_size,
            tls_ca_file: self.tls_ca_file,
            jobs_field,
            reconcile_interval,
            require_notifications,
        })
    }
}

/// A flag as pydantic reads a `bool` setting: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, in any case.
fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn strip(e: Error) -> String {
    match e {
        Error::Config(message) => message,
        other => other.to_string(),
    }
}

fn masked(url: &Option<String>) -> Option<String> {
    url.as_ref().map(|u| match RedisUrl::parse(u) {
        Ok(url) => url.to_string(),
        Err(_) => "<unparsed URL>".to_owned(),
    })
}

impl fmt::Debug for RedisRepositorySettingsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRepositorySettingsBuilder")
            .field("write_url", &masked(&self.write_url))
            .field("read_url", &masked(&self.read_url))
            .field("ttl", &self.ttl)
            .field("timezone", &self.timezone)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("pool_size", &self.pool_size)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("require_notifications", &self.require_notifications)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<RedisRepositorySettings> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RedisRepositorySettingsBuilder::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .build()
    }

    fn config_message(result: Result<RedisRepositorySettings>) -> String {
        match result {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_python_package() {
        let s = from(&[(WRITE_URL_VAR, "redis://localhost:6379/3")]).unwrap();
        assert_eq!(s.read_url(), s.write_url());
        assert_eq!(s.ttl_seconds(), 7_776_000);
        assert_eq!(s.zone().name(), "Asia/Seoul");
        assert_eq!(s.write_url().database(), 3);
    }

    #[test]
    fn provider_settings_default_and_parse() {
        let url = (WRITE_URL_VAR, "redis://localhost");
        let s = from(&[url]).unwrap();
        assert_eq!(s.reconcile_interval(), Duration::from_secs(300));
        assert!(s.require_keyevent_notifications());
        let s = from(&[
            url,
            (RECONCILE_INTERVAL_VAR, "0"),
            (REQUIRE_NOTIFICATIONS_VAR, "False"),
        ])
        .unwrap();
        assert_eq!(s.reconcile_interval(), Duration::ZERO);
        assert!(!s.require_keyevent_notifications());
        let s = from(&[
            url,
            (RECONCILE_INTERVAL_VAR, " 60 "),
            (REQUIRE_NOTIFICATIONS_VAR, "1"),
        ])
        .unwrap();
        assert_eq!(s.reconcile_interval(), Duration::from_secs(60));
        assert!(s.require_keyevent_notifications());
        for bad in ["-1", "ten", "1.5"] {
            let message = config_message(from(&[url, (RECONCILE_INTERVAL_VAR, bad)]));
            assert!(message.contains(RECONCILE_INTERVAL_VAR), "{bad}: {message}");
        }
        let message = config_message(from(&[url, (REQUIRE_NOTIFICATIONS_VAR, "maybe")]));
        assert!(message.contains(REQUIRE_NOTIFICATIONS_VAR), "{message}");
        let built = RedisRepositorySettings::builder()
            .with_write_url("redis://localhost")
            .with_reconcile_interval(Duration::from_secs(5))
            .with_require_keyevent_notifications(false)
            .build()
            .unwrap();
        assert_eq!(built.reconcile_interval(), Duration::from_secs(5));
        assert!(!built.require_keyevent_notifications());
    }

    #[test]
    fn missing_write_url_names_the_variable() {
        assert_eq!(config_message(from(&[])), "DMS_REDIS_WRITE_URL is required");
        assert!(config_message(from(&[(WRITE_URL_VAR, "  ")])).contains(WRITE_URL_VAR));
    }

    #[test]
    fn bad_values_are_config_errors_naming_the_variable() {
        let url = (WRITE_URL_VAR, "redis://localhost");
        assert!(config_message(from(&[url, (TTL_VAR, "0")])).contains(TTL_VAR));
        assert!(config_message(from(&[url, (TTL_VAR, "-5")])).contains(TTL_VAR));
        assert!(config_message(from(&[url, (TTL_VAR, "ten")])).contains(TTL_VAR));
        assert!(config_message(from(&[url, (TIMEZONE_VAR, "Mars/Base")])).contains(TIMEZONE_VAR));
        assert!(config_message(from(&[url, (READ_URL_VAR, "http://x")])).contains(READ_URL_VAR));
        for bad in [
            "localhost:6379",
            "redis://",
            "redis://host/abc",
            "ftp://host",
            "::",
        ] {
            assert!(
                config_message(from(&[(WRITE_URL_VAR, bad)])).contains(WRITE_URL_VAR),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_url_without_a_scheme_gets_a_hint() {
        for bare in [
            "localhost:6379",
            "127.0.0.1:6379",
            "user:hunter2@cache:6379/0",
        ] {
            let message = config_message(from(&[(WRITE_URL_VAR, bare)]));
            assert!(message.contains("redis://host:port"), "{bare}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let s = from(&[
            (WRITE_URL_VAR, "redis://user:hunter2@primary:6379/0"),
            (READ_URL_VAR, "redis://:hunter3@replica:6379/0"),
        ])
        .unwrap();
        let shown = format!("{s:?} {} {}", s.write_url(), s.read_url());
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("user:***@primary"));
        let builder = RedisRepositorySettings::builder().with_write_url("redis://:hunter2@h/0");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let err = from(&[(WRITE_URL_VAR, "redis://u:hunter2@host/notanumber")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let url = RedisUrl::parse(
            "redis-sentinel://:hunter5@h:26379/0?sentinelServiceName=m&sentinelPassword=hunter4",
        )
        .unwrap();
        assert!(!url.to_string().contains("hunter"), "{url}");
        assert!(url.to_string().contains("sentinelPassword=***"), "{url}");
    }

    #[test]
    fn cluster_urls_are_checked_and_masked() {
        let url =
            RedisUrl::parse("redis-cluster://w:hunter7@n1:7000?node=n2:7001&node=n3:7002").unwrap();
        assert!(url.is_cluster() && !url.is_sentinel() && !url.is_tls());
        assert_eq!(url.database(), 0);
        assert!(!url.to_string().contains("hunter7") && url.to_string().contains("w:***@"));
        assert!(!format!("{url:?}").contains("hunter7"));
        assert!(!RedisUrl::parse("redis://n1:7000").unwrap().is_cluster());
        for (bad, says) in [
            ("redis-cluster://:hunter7@n1", "port"),
            ("redis-cluster://:hunter7@n1:7000/3", "only database 0"),
        ] {
            let message = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(!message.contains("hunter7"), "{message}");
        }
        #[cfg(feature = "tls")]
        assert!(RedisUrl::parse("rediss-cluster://n1:7000")
            .unwrap()
            .is_tls());
        let mixed = RedisRepositorySettings::builder()
            .with_write_url("redis-cluster://n1:7000")
            .with_read_url("redis://n1:7000/0")
            .build()
            .unwrap_err()
            .to_string();
        assert!(mixed.contains("both be redis-cluster://"), "{mixed}");
        let both = RedisRepositorySettings::builder()
            .with_write_url("redis-cluster://n1:7000")
            .build()
            .unwrap();
        assert!(both.read_url().is_cluster());
    }

    #[test]
    fn sentinel_urls_name_the_service() {
        let url = RedisUrl::parse(
            "redis-sentinel://s1:26379/2?sentinelServiceName=mymaster&node=s2:26379&node=s3:26379",
        )
        .unwrap();
        assert!(url.is_sentinel());
        assert!(!url.is_tls());
        assert_eq!(url.database(), 2);
        assert!(!RedisUrl::parse("redis://h:6379/0").unwrap().is_sentinel());
        for bad in [
            "redis-sentinel://s1:26379/0",
            "redis-sentinel://s1:26379/0?node=s2:26379",
            "redis-sentinel://s1:26379/0?sentinelServiceName=",
        ] {
            let message = config_message(from(&[(WRITE_URL_VAR, bad)]));
            assert!(message.contains("sentinelServiceName"), "{bad}: {message}");
        }
        let tls = RedisUrl::parse("rediss-sentinel://s1/0?sentinelServiceName=m");
        if cfg!(feature = "tls") {
            let tls = tls.unwrap();
            assert!(tls.is_tls() && tls.is_sentinel());
        } else {
            assert!(matches!(tls, Err(Error::Config(_))));
        }
    }

    #[test]
    fn tls_urls_follow_the_feature() {
        let result = RedisUrl::parse("rediss://host:6380/0");
        if cfg!(feature = "tls") {
            assert!(result.unwrap().is_tls());
        } else {
            assert!(matches!(result, Err(Error::Config(_))));
        }
    }
}
