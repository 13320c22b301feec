//! [`RedisUrl`]: a Redis URL whose password never shows.

use std::fmt;

use task_state_core::{Error, Result};

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
