//! Connections: client configurations from URLs (TLS trust roots included), pools that
//! connect within the connect timeout, their connection events in the log, and closing.

use std::collections::HashSet;
use std::sync::Arc;

use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Pool, ReconnectPolicy,
};
use task_state_core::{BackendKind, Error, Result};

use crate::errors::{describe, kind_of, refused, scrub};
use crate::settings::{RedisRepositorySettings, RedisUrl};

/// The URL that reaches the server of a client configuration: the inverse of
/// [`client_config`] for a single server or a Sentinel group.
#[cfg(feature = "fred-escape-hatch")]
pub(crate) fn url_of(config: &Config) -> Result<String> {
    use fred::prelude::ServerConfig;

    #[cfg(feature = "tls")]
    let tls = config.tls.is_some();
    #[cfg(not(feature = "tls"))]
    let tls = false;
    let scheme = if tls { "rediss" } else { "redis" };
    let (scheme, first, query) = match &config.server {
        ServerConfig::Centralized { server } => (scheme.to_owned(), server, String::new()),
        ServerConfig::Sentinel {
            hosts,
            service_name,
            password,
            ..
        } => {
            let first = hosts
                .first()
                .ok_or_else(|| Error::Config("a Sentinel pool without hosts".to_owned()))?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("sentinelServiceName", service_name);
            for host in &hosts[1..] {
                query.append_pair("node", &format!("{}:{}", host.host, host.port));
            }
            if let Some(password) = password {
                query.append_pair("sentinelPassword", password);
            }
            (format!("{scheme}-sentinel"), first, query.finish())
        }
        ServerConfig::Clustered { hosts, .. } => {
            let first = hosts
                .first()
                .ok_or_else(|| Error::Config("a cluster pool without hosts".to_owned()))?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for host in &hosts[1..] {
                query.append_pair("node", &format!("{}:{}", host.host, host.port));
            }
            (format!("{scheme}-cluster"), first, query.finish())
        }
        // Unix sockets, when another crate turns on fred's feature for them.
        #[allow(unreachable_patterns)]
        _ => {
            return Err(Error::Config(
                "only pools on one server, a Sentinel group or a cluster are supported".to_owned(),
            ))
        }
    };
    let mut url = url::Url::parse(&format!("{scheme}://{}:{}/", first.host, first.port))
        .map_err(|e| Error::Config(format!("the pool's server address: {e}")))?;
    if let Some(user) = &config.username {
        let _ = url.set_username(user);
    }
    if let Some(password) = &config.password {
        let _ = url.set_password(Some(password));
    }
    url.set_path(&config.database.unwrap_or(0).to_string());
    if !query.is_empty() {
        url.set_query(Some(&query));
    }
    Ok(url.into())
}

/// The client configuration for `url`: what fred reads from the URL, with the CA file of the
/// settings as the TLS trust roots when one is set.
pub(crate) fn client_config(url: &RedisUrl, settings: &RedisRepositorySettings) -> Result<Config> {
    #[allow(unused_mut)]
    let mut config = Config::from_url(url.expose())
        .map_err(|e| Error::Config(scrub(&format!("{url}: {}", describe(&e)), &[url])))?;
    #[cfg(feature = "tls")]
    if let (Some(path), Some(_)) = (settings.tls_ca_file(), config.tls.as_ref()) {
        config.tls = Some(tls_with_roots(path)?.into());
    }
    #[cfg(not(feature = "tls"))]
    let _ = settings;
    Ok(config)
}

#[cfg(feature = "tls")]
fn tls_with_roots(path: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |reason: String| {
        Error::Config(format!(
            "{}: {}: {reason}",
            crate::settings::TLS_CA_FILE_VAR,
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// `attempts`: how often a command may be sent; 1 on the writer, whose commands must not be
/// re-sent after a dropped connection.
pub(crate) async fn connect_pool(
    url: &RedisUrl,
    settings: &RedisRepositorySettings,
    attempts: u32,
) -> Result<Pool> {
    let pool = build_pool(url, settings, attempts)?;
    let connect_timeout = settings.connect_timeout();
    // `connect_pool` hands back each client's connection task, so that a pool that never
    // connected can be stopped at once: a QUIT to a server that does not answer would wait
    // for another timeout (fred's `init` keeps no handle once its future is dropped).
    let tasks = pool.connect_pool();
    // fred's handshake (PING or HELLO/AUTH, SELECT, CLIENT ID, INFO) has run when the pool
    // reports itself connected, so no PING of our own is needed.
    let connected = tokio::time::timeout(connect_timeout, async {
        tokio::select! {
            result = pool.wait_for_connect() => result,
            () = all_connected(&pool) => Ok(()),
        }
    })
    .await;
    let within = || format!("cannot connect to {url} within {connect_timeout:?}");
    let result = match connected {
        Err(_) => Err(connect_error(url, within(), None)),
        // fred's own handshake timeout is the same length: the same message either way.
        Ok(Err(e)) if *e.kind() == ErrorKind::Timeout => Err(connect_error(url, within(), Some(e))),
        Ok(Err(e)) => Err(connect_error(
            url,
            format!("cannot connect to {url}: {}", describe(&e)),
            Some(e),
        )),
        Ok(Ok(())) => Ok(()),
    };
    match result {
        Ok(()) => {
            log_connection_events(&pool, url);
            tracing::info!(%url, size = pool.size(), "connected to Redis");
            Ok(pool)
        }
        Err(e) => {
            for task in tasks {
                task.abort();
            }
            Err(e)
        }
    }
}

/// The pool for `url`, not connected yet, with the settings' timeouts and `attempts`.
fn build_pool(url: &RedisUrl, settings: &RedisRepositorySettings, attempts: u32) -> Result<Pool> {
    let config = client_config(url, settings)?;
    let connect_timeout = settings.connect_timeout();
    let command_timeout = settings.command_timeout();
    Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = connect_timeout;
            c.max_command_attempts = attempts;
            if attempts == 1 && url.is_cluster() {
                // A redirection then comes back as an error the repository retries
                // itself (the server did not run the command): see `Executor::redirected`.
                c.max_redirections = 0;
            }
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build_pool(settings.pool_size())
        .map_err(|e| Error::Config(scrub(&format!("{url}: {}", describe(&e)), &[url])))
}

/// The error of a pool that did not connect: a refusal, else a [`BackendKind::Connect`]
/// (or [`BackendKind::Auth`]) error with `message`.
fn connect_error(url: &RedisUrl, message: String, source: Option<FredError>) -> Error {
    let context = format!("connecting to {url}");
    if let Some(refused) = source.as_ref().and_then(|e| refused(e, &context, &[url])) {
        return refused;
    }
    let kind = match source.as_ref().map(|e| kind_of(e, false)) {
        Some(BackendKind::Auth) => BackendKind::Auth,
        Some(BackendKind::Timeout) | None => BackendKind::Connect { timed_out: true },
        Some(_) => BackendKind::Connect { timed_out: false },
    };
    Error::Backend {
        kind,
        message: scrub(&message, &[url]),
        source: source.map(|e| Box::new(e) as task_state_core::BoxError),
    }
}

/// Logs a connected pool's connection events: a lost connection (a warning, once per
/// outage; the failed attempts after it at debug), the reconnection (info, with how long the
/// connection was down), and a reconnection to another server than before (a warning), as
/// after a Sentinel failover. The listeners end with the pool's clients.
fn log_connection_events(pool: &Pool, url: &RedisUrl) {
    use fred::interfaces::EventInterface;
    use std::sync::{Mutex, PoisonError};
    /// The pool's link, shared by its clients: one warning when the first loses its
    /// connection, one line when the last is back.
    struct Link {
        server: Option<fred::types::config::Server>,
        down: HashSet<usize>,
        down_since: Option<std::time::Instant>,
    }
    let link = Arc::new(Mutex::new(Link {
        server: pool.active_connections().into_iter().next(),
        down: HashSet::new(),
        down_since: None,
    }));
    for (i, client) in pool.clients().iter().enumerate() {
        let (on_error, error_url, watched) = (link.clone(), url.clone(), client.clone());
        // Detached: each listener ends when its client is dropped.
        drop(client.on_error(move |(error, server)| {
            let url = &error_url;
            // `close` (QUIT) ends the connection on purpose.
            if watched.state() == fred::types::ClientState::Disconnecting {
                return std::future::ready(Ok(()));
            }
            let error = scrub(error.details(), &[url]);
            let server = server.map(|s| s.to_string()).unwrap_or_default();
            let mut link = on_error.lock().unwrap_or_else(PoisonError::into_inner);
            if link.down.is_empty() {
                link.down_since = Some(std::time::Instant::now());
                tracing::warn!(%url, server, error, "connection to Redis lost; reconnecting");
            } else {
                tracing::debug!(%url, server, error, client = i, "connection to Redis failed");
            }
            link.down.insert(i);
            std::future::ready(Ok(()))
        }));
        let (link, url) = (link.clone(), url.clone());
        drop(client.on_reconnect(move |server| {
            let mut link = link.lock().unwrap_or_else(PoisonError::into_inner);
            link.down.remove(&i);
            if let Some(before) = link.server.replace(server.clone()).filter(|b| *b != server) {
                tracing::warn!(%url, from = %before, to = %server, "reconnected to another server than before (a failover)");
            }
            match link.down_since.filter(|_| link.down.is_empty()) {
                Some(since) => {
                    link.down_since = None;
                    let down_ms = since.elapsed().as_millis() as u64;
                    tracing::info!(%url, %server, down_ms, "reconnected to Redis");
                }
                None => tracing::debug!(%url, %server, client = i, "client reconnected"),
            }
            std::future::ready(Ok(()))
        }));
    }
}

/// Returns once every client of `pool` is connected. fred's `wait_for_connect` reads a
/// client's state and then subscribes to its connect event: a connection made between the two
/// is never announced to it, and it waits forever (seen on a loaded machine). Watching the
/// state as well closes that gap; `wait_for_connect` still reports a failed first attempt.
async fn all_connected(pool: &Pool) {
    while !pool.clients().iter().all(|client| client.is_connected()) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// QUITs a pool, waiting at most `timeout` (a stalled server may never answer the QUIT).
pub(crate) async fn close_pool(pool: &Pool, timeout: std::time::Duration) {
    let _ = tokio::time::timeout(timeout, pool.quit()).await;
}
