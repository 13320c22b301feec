//! The commands of an optimistic attempt, and how a round trip of them is sent.
//!
//! Each command goes out as fred's typed request where fred has one, not as a custom
//! command: fred flushes the socket after every custom command (and after every command of
//! a fred pipeline or transaction), but after a typed one only when no further request
//! waits for its router. Queued one after the other, the commands of a round trip leave in
//! one `writev` instead of one each (an edit sent about twenty).

use std::borrow::Cow;

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::interfaces::{ClientLike, HashesInterface, KeysInterface, SetsInterface};
use fred::prelude::{Error as FredError, ErrorKind, Value};
use fred::types::{CustomCommand, Expiration, ExpireOptions};
use futures::future::BoxFuture;
use futures::FutureExt;

/// One command of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `WATCH` the keys.
    Watch(Vec<String>),
    /// `UNWATCH`.
    Unwatch,
    /// `GET key`.
    Get(String),
    /// `PTTL key`.
    Pttl(String),
    /// `HMGET key fields…`.
    Hmget(String, Vec<&'static str>),
    /// `SISMEMBER key member`.
    Sismember(String, String),
    /// `SCARD key`.
    Scard(String),
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `SET key text`: `PX ttl`, or `KEEPTTL` where `ttl` is -1; `IFEQ old` when given.
    /// The texts are shared, not copied, with the reply that read them and the reply the
    /// write gives (a record may be a megabyte).
    Set {
        key: String,
        text: Str,
        ttl: i64,
        if_equal: Option<Str>,
    },
    /// `SADD key member`.
    Sadd(String, String),
    /// `SREM key member`.
    Srem(String, String),
    /// `DEL key…`.
    Del(Vec<String>),
    /// `PEXPIRE key milliseconds`, with `GT` (never shortens) where `greater`.
    Pexpire {
        key: String,
        milliseconds: i64,
        greater: bool,
    },
    /// `PERSIST key`.
    Persist(String),
    /// `HSET key field value…`.
    Hset(String, Vec<(&'static str, String)>),
    /// `HDEL key field`.
    Hdel(String, &'static str),
    /// Any other command, its name first (a [`Link`](super::link::Link)'s login).
    Other(Vec<String>),
}

impl Command {
    /// The command's request on `client`: queued to fred's router when first polled.
    fn request(self, client: &Client) -> BoxFuture<'_, Result<Value, FredError>> {
        match self {
            Command::Watch(keys) => client.watch(keys).map(|r| r.map(|()| ok())).boxed(),
            Command::Unwatch => client.unwatch().map(|r| r.map(|()| ok())).boxed(),
            Command::Get(key) => client.get(key).boxed(),
            Command::Pttl(key) => client.pttl(key).boxed(),
            Command::Hmget(key, fields) => client.hmget(key, fields).boxed(),
            Command::Sismember(key, member) => client.sismember(key, member).boxed(),
            Command::Scard(key) => client.scard(key).boxed(),
            Command::Multi => custom(client, "MULTI", Vec::new()),
            Command::Exec => custom(client, "EXEC", Vec::new()),
            Command::Set {
                key,
                text,
                ttl,
                if_equal: Some(old),
            } => {
                // fred's `set` has no `IFEQ`; a command alone in its round trip anyway.
                let mut args: Vec<Value> = vec![key.into(), text.into(), "IFEQ".into()];
                args.push(old.into());
                args.extend(
                    expiration(ttl)
                        .into_iter()
                        .map(|w| Value::from(w.into_owned())),
                );
                custom(client, "SET", args)
            }
            Command::Set {
                key,
                text,
                ttl,
                if_equal: None,
            } => {
                let expiration = if ttl == -1 {
                    Expiration::KEEPTTL
                } else {
                    Expiration::PX(ttl)
                };
                client.set(key, text, Some(expiration), None, false).boxed()
            }
            Command::Sadd(key, member) => client.sadd(key, member).boxed(),
            Command::Srem(key, member) => client.srem(key, member).boxed(),
            Command::Del(keys) => client.del(keys).boxed(),
            Command::Pexpire {
                key,
                milliseconds,
                greater,
            } => {
                let options = greater.then_some(ExpireOptions::GT);
                client.pexpire(key, milliseconds, options).boxed()
            }
            Command::Persist(key) => client.persist(key).boxed(),
            Command::Hset(key, values) => client.hset(key, values).boxed(),
            Command::Hdel(key, field) => client.hdel(key, field).boxed(),
            Command::Other(mut words) => {
                let name = if words.is_empty() {
                    String::new()
                } else {
                    words.remove(0)
                };
                let args = words.into_iter().map(Value::from).collect();
                let command = CustomCommand::new(name, None::<u16>, false);
                client.custom::<Value, _>(command, args).boxed()
            }
        }
    }

    /// Gives each of the command's words to `word`, its name first, as a
    /// [`Link`](super::link::Link) sends them: borrowed from the command (a record's text is
    /// not copied), but for the numbers, written in `digits`.
    pub(super) fn each_word(&self, word: &mut impl FnMut(&[u8])) {
        let mut w = |words: &[&str]| words.iter().for_each(|text| word(text.as_bytes()));
        let mut digits = itoa::Buffer::new();
        match self {
            Command::Watch(keys) => {
                w(&["WATCH"]);
                keys.iter().for_each(|key| w(&[key]));
            }
            Command::Unwatch => w(&["UNWATCH"]),
            Command::Get(key) => w(&["GET", key]),
            Command::Pttl(key) => w(&["PTTL", key]),
            Command::Hmget(key, fields) => {
                w(&["HMGET", key]);
                w(fields);
            }
            Command::Sismember(key, member) => w(&["SISMEMBER", key, member]),
            Command::Scard(key) => w(&["SCARD", key]),
            Command::Multi => w(&["MULTI"]),
            Command::Exec => w(&["EXEC"]),
            Command::Set {
                key,
                text,
                ttl,
                if_equal,
            } => {
                w(&["SET", key, text]);
                if let Some(old) = if_equal {
                    w(&["IFEQ", old]);
                }
                expiration(*ttl).iter().for_each(|word| w(&[word]));
            }
            Command::Sadd(key, member) => w(&["SADD", key, member]),
            Command::Srem(key, member) => w(&["SREM", key, member]),
            Command::Del(keys) => {
                w(&["DEL"]);
                keys.iter().for_each(|key| w(&[key]));
            }
            Command::Pexpire {
                key,
                milliseconds,
                greater,
            } => {
                w(&["PEXPIRE", key, digits.format(*milliseconds)]);
                if *greater {
                    w(&["GT"]);
                }
            }
            Command::Persist(key) => w(&["PERSIST", key]),
            Command::Hset(key, values) => {
                w(&["HSET", key]);
                values.iter().for_each(|(field, value)| w(&[field, value]));
            }
            Command::Hdel(key, field) => w(&["HDEL", key, field]),
            Command::Other(all) => all.iter().for_each(|word| w(&[word])),
        }
    }

    /// The key a read of one key reads (`None` for any other command).
    pub(crate) fn read_key(&self) -> Option<&str> {
        match self {
            Command::Sismember(key, _)
            | Command::Pttl(key)
            | Command::Hmget(key, _)
            | Command::Get(key) => Some(key),
            _ => None,
        }
    }

    /// The keys a write changes (none for a read).
    pub(super) fn written(&self) -> &[String] {
        match self {
            Command::Del(keys) => keys,
            Command::Set { key, .. }
            | Command::Sadd(key, _)
            | Command::Srem(key, _)
            | Command::Pexpire { key, .. }
            | Command::Persist(key)
            | Command::Hset(key, _)
            | Command::Hdel(key, _) => std::slice::from_ref(key),
            _ => &[],
        }
    }
}

/// `CLIENT CACHING YES`: the server tracks the keys the next command reads (or, before
/// `MULTI`, the keys the whole transaction reads); tracking is opt-in (`OPTIN`).
pub(super) const CACHING_YES: [&str; 3] = ["CLIENT", "CACHING", "YES"];

/// The reply `OK`, for the commands whose fred request answers `()`.
fn ok() -> Value {
    Value::String("OK".into())
}

/// `KEEPTTL` where `ttl` is -1, or `PX ttl`.
fn expiration(ttl: i64) -> Vec<Cow<'static, str>> {
    if ttl == -1 {
        vec![Cow::Borrowed("KEEPTTL")]
    } else {
        vec![Cow::Borrowed("PX"), Cow::Owned(ttl.to_string())]
    }
}

fn custom<'a>(
    client: &'a Client,
    name: &'static str,
    args: Vec<Value>,
) -> BoxFuture<'a, Result<Value, FredError>> {
    let command = CustomCommand::new_static(name, None::<u16>, false);
    client.custom::<Value, _>(command, args).boxed()
}

/// Sends `commands` on `client` one after the other without waiting for replies, and
/// returns each reply, in order.
///
/// Each request is queued to fred's router when its future is first polled (fred builds
/// the command and hands it over before its first wait), so the first polls, made here in
/// the commands' order, fix their order on the wire: `MULTI` … `EXEC` stays around what it
/// wraps. The router flushes the socket when it finds no further request queued, so
/// requests queued together leave together.
pub(super) async fn send(client: &Client, commands: Vec<Command>) -> Vec<Result<Value, FredError>> {
    let mut requests: Vec<_> = commands
        .into_iter()
        .map(|command| futures::future::maybe_done(command.request(client)))
        .collect();
    for request in &mut requests {
        // Queues the request (or finishes it, when the client refuses it at once).
        let _ = futures::poll!(std::pin::Pin::new(&mut *request));
    }
    let mut replies = Vec::with_capacity(requests.len());
    for mut request in requests {
        (&mut request).await;
        let reply = std::pin::Pin::new(&mut request)
            .take_output()
            .unwrap_or_else(|| Err(FredError::new(ErrorKind::Unknown, "no reply")));
        replies.push(reply);
    }
    replies
}
