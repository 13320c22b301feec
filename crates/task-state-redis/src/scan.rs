//! SCAN and SSCAN a page at a time, pipelines of one command a key, waiting out a cluster's redirections.

use fred::prelude::{Client, ClientLike, ClusterInterface, Error as FredError, Server, Value};
use task_state_core::Result;

use crate::errors::is_redirected;
pub(crate) use crate::errors::is_wrong_type;
use crate::execution::{redirected_on, Executor, Topology};
pub(crate) use crate::replies::text;
use fred::clients::Pipeline;
use fred::types::config::Options;
use fred::types::CustomCommand;

/// Options for commands on the writer that may safely be sent twice: reads, and writes that
/// only add or extend (`SADD`, `EXPIRE` to the store's TTL). The writer's own settings follow
/// no cluster redirection and never send a command again (`connect_pool`), which the
/// scripts need; with these, such commands follow `MOVED` and `ASK` as the slot map changes
/// and are sent again after a dropped connection.
///
/// fred counts every send against `max_attempts`, a redirected one too: the attempts are
/// the redirections plus three for dropped connections, so that a run of redirections ends
/// as fred's "Too many redirections" (which [`redirected_on`] waits out) and not as "Too
/// many failed write attempts". The helpers of this module send their commands again while
/// the cluster redirects them; a caller that sends a command with these options itself
/// should do the same (`Executor::redirected`).
pub(crate) fn resendable() -> Options {
    Options {
        max_redirections: Some(REDIRECTIONS),
        max_attempts: Some(REDIRECTIONS + 3),
        ..Options::default()
    }
}

/// The redirections fred follows at once (each after reading the slot map again) for a
/// command sent with [`resendable`].
const REDIRECTIONS: u32 = 5;

/// `pipeline.try_all()` of a pipeline built on `client` with [`resendable`], sent again
/// while the cluster redirects any of its commands: one answer a command.
pub(crate) async fn try_all<C: ClientLike>(
    client: &C,
    pipeline: &Pipeline<Client>,
) -> Result<Vec<Result<Value, FredError>>, FredError> {
    redirected_on(client, || async {
        let answers: Vec<Result<Value, FredError>> = pipeline.try_all().await;
        match answers
            .iter()
            .find_map(|a| a.as_ref().err().filter(|e| is_redirected(e)))
        {
            Some(e) => Err(e.clone()),
            None => Ok(answers),
        }
    })
    .await
}

/// Keys or members one SCAN or SSCAN step asks for: small enough that no single command
/// keeps Redis busy for long.
pub(crate) const PAGE: usize = 500;

/// Bytes as text, with what is not printable ASCII escaped (`\xff`, `\n`, `\\`): how a key or
/// member that is not UTF-8 is named in reports and warnings.
pub(crate) fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// One step of SCAN or SSCAN.
pub(crate) struct Page {
    /// The cursor of the next step, "0" at the end.
    pub(crate) next: String,
    /// The keys or members.
    pub(crate) items: Vec<String>,
    /// The keys or members that are not UTF-8, [`escaped`]: no name of the layout is, so
    /// they are reported, never used as names.
    pub(crate) not_utf8: Vec<String>,
}

/// One `SCAN cursor MATCH pattern COUNT 500 TYPE kind` step (without `TYPE` for an empty
/// `kind`: keys of every type).
pub(crate) async fn keys_page<C: ClientLike>(
    client: &C,
    cursor: &str,
    pattern: &str,
    kind: &str,
) -> Result<Page, FredError> {
    let mut args = vec![
        cursor.to_owned(),
        "MATCH".into(),
        pattern.to_owned(),
        "COUNT".into(),
        PAGE.to_string(),
    ];
    if !kind.is_empty() {
        args.extend(["TYPE".to_owned(), kind.to_owned()]);
    }
    page(client, "SCAN", args).await
}

/// [`per_key`] where each key's command may fail on its own (a key of the wrong type): one
/// answer a key, in the order of the keys. `Err` only when the round trip failed.
pub(crate) async fn per_key_each(
    client: &Client,
    command: &'static str,
    keys: impl IntoIterator<Item = String>,
) -> Result<Vec<Result<i64, FredError>>, FredError> {
    let pipeline = client.pipeline().with_options(&resendable());
    let mut sent = 0;
    for key in keys {
        let _: () = pipeline
            .custom(
                CustomCommand::new_static(command, None::<u16>, false),
                vec![key],
            )
            .await?;
        sent += 1;
    }
    if sent == 0 {
        return Ok(Vec::new());
    }
    let answers: Vec<Result<i64, FredError>> = try_all(client, &pipeline)
        .await?
        .into_iter()
        .map(|a| a.and_then(|v| v.convert()))
        .collect();
    if answers.len() != sent {
        let first = answers.into_iter().find_map(Result::err);
        return Err(first.unwrap_or_else(|| {
            FredError::new(fred::error::ErrorKind::Protocol, "answers missing")
        }));
    }
    Ok(answers)
}

/// `TYPE` of each of `keys` (`none` for a missing key), in one pipelined round trip.
pub(crate) async fn types(client: &Client, keys: Vec<String>) -> Result<Vec<String>, FredError> {
    let pipeline = client.pipeline().with_options(&resendable());
    let mut sent = 0;
    for key in keys {
        let _: () = pipeline
            .custom(
                CustomCommand::new_static("TYPE", None::<u16>, false),
                vec![key],
            )
            .await?;
        sent += 1;
    }
    if sent == 0 {
        return Ok(Vec::new());
    }
    let answers: Vec<Value> = redirected_on(client, || pipeline.all()).await?;
    Ok(answers
        .iter()
        .map(|v| text(v).unwrap_or_else(|| "none".to_owned()))
        .collect())
}

/// The pages of keys that `SCAN … MATCH pattern TYPE kind` walks on the writer:
/// `while let Some(keys) = pages.next().await? { … }`. On a Redis Cluster it walks every
/// primary in turn (those of the client's slot map when the walk starts).
pub(crate) struct KeyPages<'a> {
    exec: &'a Executor,
    pattern: &'a str,
    kind: &'a str,
    /// The cursor of the next step; `None` once the walk is over.
    cursor: Option<String>,
    /// On a cluster, the primaries still to walk, the current one last.
    nodes: Vec<Server>,
    /// The keys seen so far that are not UTF-8, [`escaped`].
    pub(crate) not_utf8: Vec<String>,
}

impl<'a> KeyPages<'a> {
    pub(crate) fn new(exec: &'a Executor, pattern: &'a str, kind: &'a str) -> Self {
        let mut nodes = Vec::new();
        if exec.topology() == Topology::Cluster {
            if let Some(state) = exec.writer().next().cached_cluster_state() {
                nodes = state.unique_primary_nodes();
                nodes.reverse();
            }
        }
        KeyPages {
            exec,
            pattern,
            kind,
            cursor: Some("0".to_owned()),
            nodes,
            not_utf8: Vec::new(),
        }
    }

    /// The next page, or `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<String>>> {
        let Some(cursor) = self.cursor.take() else {
            return Ok(None);
        };
        let client = self.exec.writer().next();
        let page = match self.nodes.last() {
            Some(node) => {
                let on_node = client.with_cluster_node(node.clone());
                keys_page(&on_node, &cursor, self.pattern, self.kind).await
            }
            None => keys_page(client, &cursor, self.pattern, self.kind).await,
        };
        let Page {
            next,
            items: keys,
            not_utf8,
        } = page.map_err(|e| self.exec.backend(e, &format!("scanning {}", self.pattern)))?;
        self.not_utf8.extend(not_utf8);
        if next != "0" {
            self.cursor = Some(next);
        } else if self.nodes.pop().is_some() && !self.nodes.is_empty() {
            self.cursor = Some("0".to_owned());
        }
        Ok(Some(keys))
    }
}

/// One integer command with one key (`EXISTS`, `SCARD`) for each of `keys`, in one pipelined
/// round trip; the answers in the order of the keys. Nothing is sent for no keys.
pub(crate) async fn per_key(
    client: &Client,
    command: &'static str,
    keys: impl IntoIterator<Item = String>,
) -> Result<Vec<i64>, FredError> {
    let pipeline = client.pipeline().with_options(&resendable());
    let mut sent = 0;
    for key in keys {
        let _: () = pipeline
            .custom(
                CustomCommand::new_static(command, None::<u16>, false),
                vec![key],
            )
            .await?;
        sent += 1;
    }
    if sent == 0 {
        return Ok(Vec::new());
    }
    redirected_on(client, || pipeline.all()).await
}

/// Whether each of the record keys `keys` holds a record, in one pipelined round trip
/// (`STRLEN`): a missing key and an empty string do not (Python's `if not raw: return None`);
/// a key of another type counts as holding one, so that it is left alone (the check reports
/// it). The answers in the order of the keys.
pub(crate) async fn holds_record(
    client: &Client,
    keys: impl IntoIterator<Item = String>,
) -> Result<Vec<bool>, FredError> {
    let answers = per_key_each(client, "STRLEN", keys).await?;
    answers
        .into_iter()
        .map(|answer| match answer {
            Ok(len) => Ok(len > 0),
            Err(e) if is_wrong_type(&e) => Ok(true),
            Err(e) => Err(e),
        })
        .collect()
}

/// One `SSCAN key cursor COUNT 500` step.
pub(crate) async fn members_page(
    client: &Client,
    key: &str,
    cursor: &str,
) -> Result<Page, FredError> {
    let args = vec![
        key.to_owned(),
        cursor.to_owned(),
        "COUNT".into(),
        PAGE.to_string(),
    ];
    page(client, "SSCAN", args).await
}

async fn page<C: ClientLike>(
    client: &C,
    command: &'static str,
    args: Vec<String>,
) -> Result<Page, FredError> {
    let client = client.with_options(&resendable());
    let reply: Value = redirected_on(&client, || {
        client.custom(
            CustomCommand::new_static(command, None::<u16>, false),
            args.clone(),
        )
    })
    .await?;
    match reply {
        Value::Array(mut parts) if parts.len() == 2 => {
            let mut items = Vec::new();
            let mut not_utf8 = Vec::new();
            if let Some(Value::Array(values)) = parts.pop() {
                for value in &values {
                    match (text(value), value) {
                        (Some(item), _) => items.push(item),
                        (None, Value::Bytes(bytes)) => not_utf8.push(escaped(bytes)),
                        (None, _) => {}
                    }
                }
            }
            let next = parts.first().and_then(text).unwrap_or_else(|| "0".into());
            Ok(Page {
                next,
                items,
                not_utf8,
            })
        }
        _ => Err(FredError::new(
            fred::error::ErrorKind::Protocol,
            format!("unexpected {command} reply"),
        )),
    }
}

/// Whether `task:{id}` holds a record, on the writer (see [`holds_record`]).
pub(crate) async fn record_held(exec: &Executor, task_id: &str) -> Result<bool> {
    let key = crate::keys::record(task_id);
    let held = holds_record(exec.writer().next(), [key.clone()])
        .await
        .map_err(|e| exec.backend(e, &format!("reading {key}")))?;
    Ok(held.first().copied().unwrap_or(false))
}
