//! The builder of the settings: values from code or from the `DMS_*` variables, each checked
//! when the settings are built.

use std::fmt;
use std::time::Duration;

use task_state_core::layout::MAX_TTL_SECONDS;
use task_state_core::{Error, JobsField, Result, Zone, DEFAULT_TIMEZONE};

use super::*;

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
    write_path: Option<String>,
    kept_records: KeptRecords,
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
            write_path: None,
            kept_records: KeptRecords::default(),
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
            write_path: present(WRITE_PATH_VAR),
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

    /// How mutations write records (default [`WritePath::Auto`]: by the record's size).
    pub fn with_write_path(mut self, path: WritePath) -> Self {
        self.write_path = Some(path.as_str().to_owned());
        self
    }

    /// What the write path's connections keep of the records they write (default
    /// [`KeptRecords::default`]).
    pub fn with_kept_records(mut self, kept: KeptRecords) -> Self {
        self.kept_records = kept;
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
        let ttl_seconds = parse_ttl(self.ttl)?;
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
        let reconcile_interval = parse_reconcile_interval(self.reconcile_interval)?;
        let require_notifications = match self.require_notifications {
            None => true,
            Some(text) => parse_flag(&text).ok_or_else(|| {
                Error::Config(format!(
                    "{REQUIRE_NOTIFICATIONS_VAR}: {text:?} is not true or false"
                ))
            })?,
        };
        let write_path = match self.write_path {
            None => WritePath::default(),
            Some(text) => text.parse()?,
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
            write_path,
            kept_records: self.kept_records,
        })
    }
}

/// A flag as pydantic reads a `bool` setting: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, in any case.
/// The TTL of [`TTL_VAR`]: whole seconds from 1 to [`MAX_TTL_SECONDS`]; the default without.
fn parse_ttl(text: Option<String>) -> Result<u64> {
    let Some(text) = text else {
        return Ok(DEFAULT_TTL_SECONDS);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 && n <= MAX_TTL_SECONDS => Ok(n),
        _ => Err(Error::Config(format!(
            "{TTL_VAR}: {text:?} is not a whole number of seconds from 1 to \
             {MAX_TTL_SECONDS} (100 years)"
        ))),
    }
}

/// The interval of [`RECONCILE_INTERVAL_VAR`]: whole seconds, 0 for none; the default
/// without.
fn parse_reconcile_interval(text: Option<String>) -> Result<Duration> {
    let Some(text) = text else {
        return Ok(DEFAULT_RECONCILE_INTERVAL);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n <= u64::from(u32::MAX) => Ok(Duration::from_secs(n)),
        _ => Err(Error::Config(format!(
            "{RECONCILE_INTERVAL_VAR}: {text:?} is not a whole number of seconds \
             (0 turns the reconciler off)"
        ))),
    }
}

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
            .field("write_path", &self.write_path)
            .field("kept_records", &self.kept_records)
            .finish()
    }
}
