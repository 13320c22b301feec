//! A connection of this crate's own for the `WATCH` edits (issue 21), and the pool of them.
//!
//! A round trip is one buffer written and its replies parsed in one pass (`redis-protocol`),
//! where fred makes a request, a channel hop and a timer of every command. The connection
//! speaks RESP3 with client-side caching on, opt-in (`CLIENT TRACKING ON NOLOOP OPTIN`; each
//! read whose reply [`Tracked`] keeps is sent after `CLIENT CACHING YES`): the server sends an
//! invalidation for a key this connection read so when another client changes it, on the
//! same connection and before the reply of any command that runs after the change, so that
//! [`Tracked`] knows which of those reads still hold when a round trip's replies arrive.
//! A link lives as long as its socket: when it fails, what it tracked goes with it.
//!
//! The pool ([`Links`]) holds a line of the edits waiting for a link; the edit whose write
//! frees one sends the first round of the edit first in line after its `EXEC`, in the same
//! write, and the link goes to that edit with the replies ([`Ahead`]).

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fred::bytes::BytesMut;
use fred::prelude::{Error as FredError, ErrorKind, Value};
use redis_protocol::resp3::decode::complete::decode_bytes_mut;
use redis_protocol::resp3::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::commands::Command;
use super::resp::{announced, encode, invalidated, value};
use super::tracked::{Invalidated, Tracked};
use crate::settings::KeptRecords;

/// A link's socket: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// Where a link connects: the writer pool's server.
pub(super) struct Target {
    pub(super) host: String,
    pub(super) port: u16,
    /// The name the server's certificate is checked against, where it is not `host`.
    #[cfg(feature = "tls")]
    pub(super) tls_name: Option<String>,
}

/// How links log in and how long they wait. (No `Debug`: it holds the password.)
#[derive(Clone)]
pub(super) struct Login {
    /// The writer pool's TLS connector, for `rediss://` URLs.
    #[cfg(feature = "tls")]
    pub(super) tls: Option<tokio_rustls::TlsConnector>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) database: Option<u8>,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
}

/// The replies of a round trip, and the invalidations that arrived among them.
#[derive(Default)]
pub(super) struct Round {
    pub(super) replies: Vec<Result<Value, FredError>>,
    /// Each invalidation with the number of replies read before it.
    pub(super) pushes: Vec<(usize, Invalidated)>,
    /// Whether each command was sent after `CLIENT CACHING YES`, so that the server tracks
    /// its key ([`Tracked::asks`]).
    pub(super) asked: Vec<bool>,
}

impl Round {
    /// Whether an invalidation of `key` arrived in the round trip.
    pub(super) fn names(&self, key: &str) -> bool {
        self.pushes.iter().any(|(_, keys)| keys.names(key))
    }
}

/// One connection.
pub(super) struct Link {
    stream: Box<dyn Io>,
    /// The server it is connected to (`host`, `port`).
    server: (String, u16),
    unread: BytesMut,
    /// What this connection read under tracking, and still holds.
    pub(super) tracked: Tracked,
    /// Not to be used again: its socket failed, a round trip timed out, or the server
    /// answered a write with an error.
    broken: bool,
    /// A round trip is under way: a link dropped in the middle of one (its edit cancelled)
    /// has replies in flight, and is not used again.
    busy: bool,
    /// The pool of a single server's links, whose line of waiting edits this link's writes
    /// may carry the first round of. (Weak: the pool keeps its idle links.)
    pool: Option<Weak<Mutex<Pool>>>,
    /// The edit whose first round went out after this link's last `EXEC`: the link is its.
    next: Option<oneshot::Sender<Handed>>,
    /// That first round and its replies, for the edit that holds the link now.
    pub(super) ahead: Option<Ahead>,
}

impl Link {
    /// A connection to `target`, logged in, in RESP3, tracking.
    async fn connect(target: &Target, login: &Login) -> Result<Link, FredError> {
        let stream = tokio::time::timeout(login.connect_timeout, open(target, login))
            .await
            .map_err(|_| FredError::new(ErrorKind::Timeout, "connecting timed out"))??;
        let mut link = Link {
            stream,
            server: (target.host.clone(), target.port),
            unread: BytesMut::with_capacity(16 * 1024),
            tracked: Tracked::default(),
            broken: false,
            busy: false,
            pool: None,
            next: None,
            ahead: None,
        };
        let mut hello = vec!["HELLO".to_owned(), "3".to_owned()];
        if let Some(password) = &login.password {
            let user = login.username.as_deref().unwrap_or("default");
            hello.extend(["AUTH".to_owned(), user.to_owned(), password.clone()]);
        }
        let mut setup = vec![Command::Other(hello)];
        if let Some(db) = login.database.filter(|db| *db != 0) {
            setup.push(Command::Other(vec!["SELECT".to_owned(), db.to_string()]));
        }
        let tracking = ["CLIENT", "TRACKING", "ON", "NOLOOP", "OPTIN"];
        setup.push(Command::Other(tracking.map(str::to_owned).to_vec()));
        let round = tokio::time::timeout(login.connect_timeout, link.round(&setup))
            .await
            .map_err(|_| FredError::new(ErrorKind::Timeout, "logging in timed out"))?;
        for reply in round.replies {
            reply?;
        }
        Ok(link)
    }

    /// Sends `commands` in one write and reads their replies. A failure of the socket fails
    /// every reply not read and breaks the link.
    pub(super) async fn round(&mut self, commands: &[Command]) -> Round {
        let mut round = Round {
            replies: Vec::with_capacity(commands.len()),
            pushes: Vec::new(),
            asked: commands.iter().map(|c| self.tracked.asks(c)).collect(),
        };
        if self.broken {
            let e = FredError::new(ErrorKind::IO, "Connection closed.");
            round.replies = commands.iter().map(|_| Err(e.clone())).collect();
            return round;
        }
        self.busy = true;
        if let Err(e) = self.write(commands, &round.asked).await {
            self.broken = true;
            round.replies = commands.iter().map(|_| Err(e.clone())).collect();
            return round;
        }
        // The reply of the `CLIENT CACHING YES` sent before the command whose reply is read
        // next, if one was: an error there makes that command's reply the error, so that
        // what it read is not kept untracked.
        let mut caching: Option<Result<Value, FredError>> = None;
        while round.replies.len() < commands.len() {
            match self.frame().await {
                Ok(BytesFrame::Push { data, .. }) => {
                    // Any other push (none is asked for) is no reply either.
                    if let Some(keys) = invalidated(&data) {
                        round.pushes.push((round.replies.len(), keys));
                    }
                }
                Ok(frame) => {
                    let n = round.replies.len();
                    if caching.is_none() && round.asked[n] {
                        caching = Some(value(frame));
                        continue;
                    }
                    let reply = match caching.take() {
                        Some(Err(e)) => Err(e),
                        _ => value(frame),
                    };
                    round.replies.push(reply);
                }
                Err(e) => {
                    self.broken = true;
                    round.replies.resize_with(commands.len(), || Err(e.clone()));
                }
            }
        }
        self.busy = false;
        self.tracked
            .forget(round.pushes.iter().map(|(_, keys)| keys));
        round
    }

    /// The first round of the edit first in line, where it has one to send ahead: the link
    /// goes to that edit when the one holding it lets it go.
    pub(super) fn take_next(&mut self) -> Option<Vec<Command>> {
        let pool = self.pool.as_ref()?.upgrade()?;
        let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
        while pool.line.front().is_some_and(|w| w.handed.is_closed()) {
            pool.line.pop_front();
        }
        pool.line.front()?.first.as_ref()?;
        let waiter = pool.line.pop_front()?;
        self.next = Some(waiter.handed);
        waiter.first
    }

    /// Marks the link as not to be used again (a reply not read, a timeout).
    pub(super) fn break_off(&mut self) {
        self.broken = true;
    }

    async fn write(&mut self, commands: &[Command], asked: &[bool]) -> Result<(), FredError> {
        let out = encode(commands, asked);
        self.stream.write_all(&out).await.map_err(io)
    }

    async fn frame(&mut self) -> Result<BytesFrame, FredError> {
        loop {
            let decoded = decode_bytes_mut(&mut self.unread)
                .map_err(|e| FredError::new(ErrorKind::Protocol, e.to_string()))?;
            if let Some((frame, _, _)) = decoded {
                return Ok(frame);
            }
            // A buffer serves several round trips: the replies taken from it keep its
            // memory, so a new one is made only when little is left. A long text (a record)
            // gets the room it announces at once, not a buffer grown and copied as it comes.
            // (At most 16 MiB ahead: a header is no reason to reserve more.)
            let wanted = announced(&self.unread)
                .unwrap_or(0)
                .clamp(4 * 1024, 16 << 20);
            if self.unread.capacity() - self.unread.len() < wanted {
                self.unread.reserve(wanted.max(16 * 1024));
            }
            let n = self.stream.read_buf(&mut self.unread).await.map_err(io)?;
            if n == 0 {
                return Err(FredError::new(ErrorKind::IO, "Connection closed."));
            }
        }
    }
}

/// The socket to `target`: TCP, and TLS over it where the writer pool has a connector.
async fn open(target: &Target, login: &Login) -> Result<Box<dyn Io>, FredError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    #[cfg(feature = "tls")]
    if let Some(connector) = &login.tls {
        let name = target
            .tls_name
            .as_deref()
            .unwrap_or(&target.host)
            .to_owned();
        let name = rustls::pki_types::ServerName::try_from(name)
            .map_err(|e| FredError::new(ErrorKind::Tls, e.to_string()))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| FredError::new(ErrorKind::Tls, e.to_string()))?;
        return Ok(Box::new(tls));
    }
    #[cfg(not(feature = "tls"))]
    let _ = login;
    Ok(Box::new(tcp))
}

fn io(e: std::io::Error) -> FredError {
    FredError::new(ErrorKind::IO, e.to_string())
}

/// Whether a failed login will fail again the same way: the server does not take the
/// password, lets this user run no `HELLO` or `CLIENT`, or knows no such command (before
/// Redis 6); not a server that is loading or out of reach.
fn refuses_for_good(e: &FredError) -> bool {
    let said = e.details();
    *e.kind() == ErrorKind::Auth
        || ["NOPERM", "unknown command", "unknown subcommand", "NOPROTO"]
            .iter()
            .any(|word| said.contains(word))
}

/// The links of one writer pool: at most `size` at once, each used by one edit at a time.
/// An edit that finds none free waits in line; the link that frees first goes to the first
/// in line, and where it is freed by an edit's write (`MULTI` … `EXEC`), the first round of
/// the edit in line (its `WATCH` and reads) goes out in the same write after the `EXEC`
/// ([`Link::take_next`]): one round trip less for the edit in line, and one write less.
pub(super) struct Links {
    login: Login,
    pool: Arc<Mutex<Pool>>,
    /// Links to several servers at once (the primaries of a cluster), not only to where the
    /// writer pool is.
    spread: bool,
    /// The server refused a link's login (no `HELLO 3`, no `CLIENT TRACKING`, a password it
    /// does not take): the edits go to the script from then on.
    refused: std::sync::atomic::AtomicBool,
    /// What the links keep of the records they write, and the bytes left for that on all
    /// of them (`None` on a cluster, where the links do not keep records).
    texts: Option<(KeptRecords, Arc<AtomicUsize>)>,
}

/// The links not in use, how many more may be held, and the edits waiting for one.
#[derive(Default)]
pub(super) struct Pool {
    idle: Vec<Link>,
    /// The most links held at once (and idle at once, spread over a cluster's primaries).
    size: usize,
    /// Links that may still be held (made or taken from `idle`) at once.
    free: usize,
    /// The edits waiting for a link, first come first.
    line: VecDeque<Waiter>,
}

impl Pool {
    /// Keeps `link` idle. (Links spread over a cluster's primaries: the oldest idle one goes
    /// when as many are idle as may be held at once.)
    fn park(&mut self, link: Link) {
        if self.idle.len() >= self.size {
            self.idle.remove(0);
        }
        self.idle.push(link);
    }
}

/// An edit waiting for a link: the first round of its reads, where it has one to send
/// ahead, and where the link goes.
pub(super) struct Waiter {
    first: Option<Vec<Command>>,
    handed: oneshot::Sender<Handed>,
}

/// What came back of the first round of the next edit, sent after the `EXEC` of the one
/// before on the same link: the replies in the order of its commands (each `None` until
/// known), and those of its commands served from what the link keeps whose key an
/// invalidation named in that round trip (to be read again).
pub(super) struct Ahead {
    pub(super) replies: Vec<Option<Result<Value, FredError>>>,
    pub(super) stale: Vec<(usize, Command)>,
}

/// A link held by one edit; it goes to the first edit in line when dropped, or back to the
/// pool (unless broken).
pub(super) struct Held<'a> {
    links: &'a Links,
    link: Option<Link>,
}

impl std::ops::Deref for Held<'_> {
    type Target = Link;
    fn deref(&self) -> &Link {
        self.link.as_ref().expect("a held link")
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Link {
        self.link.as_mut().expect("a held link")
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let link = self.link.take();
        give_back(&self.links.pool, link);
    }
}

/// A place in the pool handed to an edit in line, with the link that goes with it (`None`:
/// the edit makes one). Dropped unreceived (the edit cancelled), it goes to the next.
struct Handed {
    pool: Arc<Mutex<Pool>>,
    link: Option<Option<Link>>,
}

impl Handed {
    /// The link handed over, the place now the receiver's.
    fn take(mut self) -> Option<Link> {
        self.link.take().flatten()
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            give_back(&self.pool, link);
        }
    }
}

/// Gives the place of an edit done with `link` (`None`: it has none) back to `pool`: to the
/// edit whose first round went out on the link, or to the first in line, or
/// free, the link idle (unless broken).
fn give_back(pool: &Arc<Mutex<Pool>>, link: Option<Link>) {
    let handed = |link| Handed {
        pool: Arc::clone(pool),
        link: Some(link),
    };
    let mut link = link.filter(|link| !link.broken && !link.busy);
    // The edit whose first round went out after this link's `EXEC`: the link is its (its
    // `WATCH` holds there); where it went, the link is closed and the place goes on.
    if let Some(next) = link.as_mut().and_then(|link| link.next.take()) {
        match next.send(handed(link.take())) {
            Ok(()) => return,
            Err(mut back) => {
                back.link = None;
            }
        }
    }
    let mut pool_now = pool.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(waiter) = pool_now.line.pop_front() {
        match waiter.handed.send(handed(link.take())) {
            Ok(()) => return,
            Err(mut back) => link = back.link.take().flatten(),
        }
    }
    pool_now.free += 1;
    if let Some(link) = link {
        pool_now.park(link);
    }
}

impl Links {
    /// At most `size` links at once, to the writer pool's server, or, where `spread`, to
    /// any primary of a cluster.
    pub(super) fn new(login: Login, size: usize, spread: bool, kept: KeptRecords) -> Self {
        let texts = (!spread && kept.budget_bytes > 0)
            .then(|| (kept, Arc::new(AtomicUsize::new(kept.budget_bytes))));
        let pool = Pool {
            free: size.max(1),
            size: size.max(1),
            ..Pool::default()
        };
        Links {
            login,
            pool: Arc::new(Mutex::new(pool)),
            spread,
            refused: std::sync::atomic::AtomicBool::new(false),
            texts,
        }
    }

    /// The time a round trip may take.
    pub(super) fn command_timeout(&self) -> Duration {
        self.login.command_timeout
    }

    /// An idle link to `target` (where the writer pool's connection is, or a primary of a
    /// cluster), or a new one; where as many are held as may be, the first that frees.
    /// `first` is the first round of the edit's reads: where the link is freed by an
    /// edit's write, it goes out after that write's `EXEC`, and the link comes back with
    /// its replies ([`Link::ahead`]). Unless the links spread over a cluster, idle links to
    /// another server (the primary before a failover) are closed: one that turned replica
    /// would refuse their writes.
    pub(super) async fn acquire(
        &self,
        target: Target,
        first: impl FnOnce() -> Option<Vec<Command>>,
    ) -> Result<Held<'_>, FredError> {
        let to_target = |link: &Link| link.server.0 == target.host && link.server.1 == target.port;
        let mut first = Some(first);
        // Made once the edit is to wait (outside the lock), and sent ahead once.
        let mut made: Option<Vec<Command>> = None;
        let link = loop {
            let handed = {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.free == 0 && made.is_none() && !self.spread {
                    if let Some(first) = first.take() {
                        drop(pool);
                        made = first();
                        continue;
                    }
                }
                if pool.free > 0 {
                    pool.free -= 1;
                    if !self.spread {
                        pool.idle.retain(to_target);
                    }
                    let idle = pool.idle.iter().rposition(to_target);
                    Ok(idle.map(|n| pool.idle.remove(n)))
                } else {
                    let (handed, wait) = oneshot::channel();
                    pool.line.push_back(Waiter {
                        first: made.take(),
                        handed,
                    });
                    Err(wait)
                }
            };
            match handed {
                Ok(idle) => break idle,
                Err(wait) => match wait.await.map(Handed::take) {
                    Ok(Some(link)) if !to_target(&link) => {
                        // To another primary of a cluster (kept idle), or to the primary
                        // before a failover (closed).
                        if self.spread {
                            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                            pool.park(link);
                        }
                        break None;
                    }
                    Ok(link) => break link,
                    // The link that carried its first round failed: in line again.
                    Err(_) => continue,
                },
            }
        };
        // From here the edit holds a place: a failed connection gives it back.
        let mut held = Held {
            links: self,
            link: None,
        };
        held.link = Some(match link {
            Some(link) => link,
            None => self.connect(&target).await?,
        });
        Ok(held)
    }

    /// A new link to `target`.
    async fn connect(&self, target: &Target) -> Result<Link, FredError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.refused.load(Relaxed) {
            return Err(FredError::new(ErrorKind::Config, "links refused"));
        }
        let mut link = Link::connect(target, &self.login).await;
        if let Ok(link) = &mut link {
            if let Some((kept, left)) = &self.texts {
                link.tracked.keep_texts(*kept, Arc::clone(left));
            }
            if !self.spread {
                link.pool = Some(Arc::downgrade(&self.pool));
            }
        }
        if let Err(e) = &link {
            if refuses_for_good(e) {
                tracing::warn!(
                    error = %crate::errors::describe(e),
                    "the server refused a connection of the write path's own: mutations run their scripts"
                );
                self.refused.store(true, Relaxed);
            }
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links_to(size: usize) -> Links {
        let login = Login {
            #[cfg(feature = "tls")]
            tls: None,
            username: None,
            password: None,
            database: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
        };
        Links::new(login, size, false, KeptRecords::default())
    }

    fn target(port: u16) -> Target {
        Target {
            host: "127.0.0.1".to_owned(),
            port,
            #[cfg(feature = "tls")]
            tls_name: None,
        }
    }

    /// An edit in line that goes (its future dropped) after its place was handed to it, or
    /// before, loses no place: the pool's one place comes back each time, with its link.
    #[tokio::test]
    async fn a_place_handed_to_an_edit_that_went_comes_back() {
        let Some(server) = crate::testing::server_or_skip() else {
            return;
        };
        let links = links_to(1);
        let first = || Some(vec![Command::Get("task:1".to_owned())]);
        for handed_first in [true, false] {
            let held = links.acquire(target(server.port()), first).await.unwrap();
            let mut waiting = Box::pin(links.acquire(target(server.port()), first));
            assert!(futures::poll!(&mut waiting).is_pending(), "in line");
            if handed_first {
                drop(held);
                drop(waiting);
            } else {
                drop(waiting);
                drop(held);
            }
            let pool = links.pool.lock().unwrap();
            assert_eq!((pool.free, pool.idle.len()), (1, 1), "{handed_first}");
        }
        let held = links.acquire(target(server.port()), first).await.unwrap();
        let mut waiting = Box::pin(links.acquire(target(server.port()), first));
        assert!(futures::poll!(&mut waiting).is_pending(), "one place only");
        drop(held);
        assert!(futures::poll!(&mut waiting).is_ready(), "handed over");
    }
}
