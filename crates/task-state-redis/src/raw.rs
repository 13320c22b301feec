//! What the repository offers tools beyond the trait, without handing out fred's types: a
//! record's stored bytes (whole, or its length and a byte range, for a follower that reads
//! only what is new), and a ping of both pools. Behind the feature `fred-escape-hatch`, the
//! pools themselves.

use fred::prelude::{ClientLike, KeysInterface, Pool, TransactionInterface, Value};
use task_state_core::{validate_task_id, BackendKind, Error, Result};

#[cfg(feature = "fred-escape-hatch")]
use crate::connection::url_of;
use crate::errors::{describe, kind_of, scrub};
use crate::keys;
use crate::repository::RedisTaskRepository;
#[cfg(feature = "fred-escape-hatch")]
use crate::settings::RedisRepositorySettings;

impl RedisTaskRepository {
    /// The stored bytes of a task's record, exactly as they are, or `None`.
    ///
    /// ```no_run
    /// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
    /// if let Some(bytes) = repo.get_raw("7").await? {
    ///     println!("{}", String::from_utf8_lossy(&bytes));
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, [`Error::WrongType`] when the key holds
    /// another type.
    pub async fn get_raw(&self, task_id: &str) -> Result<Option<Vec<u8>>> {
        validate_task_id(task_id)?;
        let key = keys::record(task_id);
        let value: Value = self
            .reader()
            .next()
            .get(&key)
            .await
            .map_err(|e| self.exec().read_error(e, &key, "string"))?;
        stored_bytes(&key, value)
    }

    /// The length of a task's stored record and its bytes from `start` to `end` (both
    /// included, as `GETRANGE` counts; cut at the record's end), read together from the
    /// reader in one round trip (`STRLEN` and `GETRANGE` in a pipeline). A missing record has
    /// length 0. For a follower of a log that reads only a record's head and what was
    /// appended (the console's `LogTail`).
    ///
    /// ```no_run
    /// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
    /// let (len, head) = repo.record_len_and_range("7", 0, 99).await?;
    /// assert!(head.len() <= 100 && head.len() <= len);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, [`Error::WrongType`] when the key holds
    /// another type, [`Error::Backend`] when Redis fails.
    pub async fn record_len_and_range(
        &self,
        task_id: &str,
        start: usize,
        end: usize,
    ) -> Result<(usize, Vec<u8>)> {
        validate_task_id(task_id)?;
        let key = keys::record(task_id);
        let failed = |e| self.exec().read_error(e, &key, "string");
        let pipeline = self.reader().next().pipeline();
        let _: () = pipeline.strlen(&key).await.map_err(failed)?;
        let (start, end) = (offset(start), offset(end));
        let _: () = pipeline.getrange(&key, start, end).await.map_err(failed)?;
        pipeline.all().await.map_err(failed)
    }

    /// A task's stored record's bytes in each of `ranges` (`start` and `end` both included,
    /// as `GETRANGE` counts; cut at the record's end, so `usize::MAX` reads to the end), all
    /// of one version of the record: the `GETRANGE`s in one transaction (`MULTI` … `EXEC`),
    /// one round trip to the reader, so that no write lands between them. A missing record
    /// gives empty ranges. For a follower of a log that reads a record's head and what was
    /// appended at its end together (the console's `LogTail`).
    ///
    /// ```no_run
    /// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
    /// let ranges = repo.record_ranges("7", &[(0, 99), (1_000, usize::MAX)]).await?;
    /// if ranges[0].is_empty() {
    ///     println!("no task 7");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`record_len_and_range`](Self::record_len_and_range).
    pub async fn record_ranges(
        &self,
        task_id: &str,
        ranges: &[(usize, usize)],
    ) -> Result<Vec<Vec<u8>>> {
        validate_task_id(task_id)?;
        let key = keys::record(task_id);
        let failed = |e| self.exec().read_error(e, &key, "string");
        let transaction = self.reader().next().multi();
        for (start, end) in ranges {
            let (start, end) = (offset(*start), offset(*end));
            let _: () = transaction
                .getrange(&key, start, end)
                .await
                .map_err(failed)?;
        }
        let replies: Vec<Value> = transaction.exec(true).await.map_err(failed)?;
        if replies.len() != ranges.len() {
            return Err(Error::decode(key, format!("{} replies", replies.len())));
        }
        replies
            .into_iter()
            .map(|value| Ok(stored_bytes(&key, value)?.unwrap_or_default()))
            .collect()
    }

    /// The bytes of a task's stored record from `start` to `end` (both included, as
    /// `GETRANGE` counts; cut at the record's end, so `usize::MAX` reads to the end; empty
    /// for a missing record), from the reader.
    ///
    /// # Errors
    /// As [`record_len_and_range`](Self::record_len_and_range).
    pub async fn record_range(&self, task_id: &str, start: usize, end: usize) -> Result<Vec<u8>> {
        validate_task_id(task_id)?;
        let key = keys::record(task_id);
        self.reader()
            .next()
            .getrange(&key, offset(start), offset(end))
            .await
            .map_err(|e| self.exec().read_error(e, &key, "string"))
    }

    /// Pings the writer pool, then the reader pool, each within the command timeout: a
    /// health check.
    ///
    /// ```no_run
    /// # async fn run(repo: task_state_redis::RedisTaskRepository) {
    /// match repo.ping().await {
    ///     Ok(()) => println!("ok"),
    ///     Err(e) => println!("unavailable: {e}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] whose message names the pool that did not answer (`the writer pool
    /// does not answer a ping: ...`, `the reader pool gave no answer to a ping within 5s`) and
    /// no URL, so that it can be shown where the servers' addresses must not be.
    pub async fn ping(&self) -> Result<()> {
        self.ping_pool(self.writer(), "writer").await?;
        self.ping_pool(self.reader(), "reader").await
    }

    async fn ping_pool(&self, pool: &Pool, name: &str) -> Result<()> {
        let settings = self.settings();
        let timeout = settings.command_timeout();
        match tokio::time::timeout(timeout, pool.next().ping::<String>(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Backend {
                kind: kind_of(&e, false),
                message: scrub(
                    &format!("the {name} pool does not answer a ping: {}", describe(&e)),
                    &[settings.write_url(), settings.read_url()],
                ),
                source: Some(Box::new(e)),
            }),
            Err(_) => Err(Error::backend_of(
                BackendKind::Timeout,
                format!("the {name} pool gave no answer to a ping within {timeout:?}"),
            )),
        }
    }

    /// A repository on pools the application already has, as the Python package's
    /// `RedisTaskRepository(reader, writer, ttl_seconds=, tzinfo=)`: writes go to `writer`,
    /// reads to `reader` (pass the same pool twice for one server). Nothing is sent yet: the
    /// pools should be connected (`init`), and scripts are loaded on first use. Behind the
    /// feature `fred-escape-hatch`, since it takes fred's types.
    ///
    /// The settings it reports ([`settings`](Self::settings)) carry the pools' server
    /// addresses and credentials, so that the expiry listener can open its own connection to
    /// the same server, and the default timeouts. The writer pool should be built with
    /// `max_command_attempts = 1`, as [`connect`](Self::connect) does, so that a mutation
    /// whose reply was lost is never sent twice. [`close`](Self::close) quits both pools.
    ///
    /// On a Redis Cluster (both pools clustered), the writer pool should also have
    /// `max_redirections = 0`: fred follows a redirection only by sending the command again,
    /// so the repository follows it itself (see `docs/cluster.md`); the reader pool may
    /// keep fred's defaults.
    ///
    /// ```no_run
    /// # async fn run() -> task_state_core::Result<()> {
    /// use fred::prelude::{Builder, ClientLike, Config};
    /// use task_state_core::Zone;
    /// use task_state_redis::RedisTaskRepository;
    ///
    /// let config = Config::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// let pool = Builder::from_config(config).build_pool(4).unwrap();
    /// pool.init().await.unwrap();
    /// let repo = RedisTaskRepository::from_pools(pool.clone(), pool, 86_400, Zone::utc())?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a TTL of zero, a pool of a kind this backend does not support
    /// (a unix socket), or a clustered pool with one that is not.
    #[cfg(feature = "fred-escape-hatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fred-escape-hatch")))]
    pub fn from_pools(
        reader: Pool,
        writer: Pool,
        ttl_seconds: u64,
        zone: task_state_core::Zone,
    ) -> Result<Self> {
        let settings = RedisRepositorySettings::builder()
            .with_write_url(url_of(&writer.next().client_config())?)
            .with_read_url(url_of(&reader.next().client_config())?)
            .with_ttl_seconds(ttl_seconds)
            .with_timezone(zone.name())
            .build()?;
        Ok(Self::on_pools(writer, reader, false, settings))
    }

    /// The writer pool: an escape hatch for commands the repository does not offer.
    ///
    /// Its clients send a command once, and on a Redis Cluster follow no redirection: a
    /// script must not run twice, so the repository retries only what the server refused
    /// unrun. For a command that may safely be sent again, pass options that allow it, for
    /// example `client.with_options(&Options { max_redirections: Some(5), max_attempts:
    /// Some(3), ..Default::default() })` (fred's `ClientLike::with_options`).
    ///
    /// fred's types are not part of this crate's stable API: the feature
    /// `fred-escape-hatch` (off by default) says so, and a caller that turns it on follows
    /// fred's versions with this crate's.
    ///
    /// ```no_run
    /// # async fn run(repo: task_state_redis::RedisTaskRepository) {
    /// use fred::prelude::KeysInterface;
    ///
    /// // A key of the application's own, beside the layout.
    /// let seen: Option<String> = repo.raw_writer().next().get("app:last-seen").await.unwrap();
    /// # }
    /// ```
    #[cfg(feature = "fred-escape-hatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fred-escape-hatch")))]
    pub fn raw_writer(&self) -> &Pool {
        self.writer()
    }

    /// The reader pool: an escape hatch, as [`raw_writer`](Self::raw_writer).
    #[cfg(feature = "fred-escape-hatch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fred-escape-hatch")))]
    pub fn raw_reader(&self) -> &Pool {
        self.reader()
    }
}

/// `offset` as `GETRANGE` takes it: an `i64`, which fred sends only below `i64::MAX`. No
/// record is that long, so the reply is the same.
fn offset(offset: usize) -> usize {
    offset.min((i64::MAX - 1) as usize)
}

/// The bytes of `key` in a reply to `GET` or `GETRANGE`, `None` for a missing key.
fn stored_bytes(key: &str, value: Value) -> Result<Option<Vec<u8>>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
        Value::Bytes(b) => Ok(Some(b.to_vec())),
        other => Err(Error::decode(key, format!("unexpected value {other:?}"))),
    }
}
