//! Where the commands of an attempt go: a fred client, or a [`Link`] of this crate's own,
//! whose [`Tracked`](super::tracked::Tracked) reads answer what they can without a round
//! trip.

use std::time::{Duration, Instant};

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::prelude::{Error as FredError, ErrorKind, Value};

use super::commands::{send, Command};
use super::link::{Ahead, Link, Round};
use super::tracked::{Head, Invalidated};

/// Where the commands of an attempt go.
pub(super) enum Conn<'a> {
    /// A client of the writer pool (`SET … IFEQ`).
    Fred(&'a Client),
    /// A link of this crate's own, and the time a round trip may take.
    Link(&'a mut Link, Duration),
}

/// How a round trip on a link goes besides its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// As it is.
    Plain,
    /// With a round trip even where what the link keeps answers every command (a `PING`
    /// then), so that each reply holds as if read when the round trip ended.
    Synced,
    /// The last round of the attempt's use of the link (its `MULTI` … `EXEC`): it carries
    /// the first round of the edit first in line ([`Link::take_next`]).
    Carrying,
}

impl Conn<'_> {
    /// The replies to `commands`, in order, sent in one round trip.
    pub(super) async fn send(&mut self, commands: Vec<Command>) -> Vec<Result<Value, FredError>> {
        self.send_as(commands, Way::Plain).await
    }

    /// [`Conn::send`], the round trip going `way` on a link.
    pub(super) async fn send_as(
        &mut self,
        commands: Vec<Command>,
        way: Way,
    ) -> Vec<Result<Value, FredError>> {
        match self {
            Conn::Fred(client) => send(client, commands).await,
            Conn::Link(link, timeout) => send_on_link(link, *timeout, commands, way).await,
        }
    }

    /// The replies of the attempt's first round where it went out ahead, after the `EXEC`
    /// of the edit before it on the link ([`Link::ahead`]), with those served from what the
    /// link keeps whose key an invalidation named read again; `None` where it did not.
    pub(super) async fn replies_ahead(&mut self) -> Option<Vec<Result<Value, FredError>>> {
        let Conn::Link(link, timeout) = self else {
            return None;
        };
        let Ahead { mut replies, stale } = link.ahead.take()?;
        again(link, *timeout, stale, &mut replies).await;
        Some(finish(replies))
    }

    /// Ends what a link watched for an attempt that writes nothing, so that it does not
    /// abort the link's next one (a fred client watches nothing: `SET … IFEQ`).
    pub(super) async fn unwatch(&mut self) {
        if matches!(self, Conn::Link(..)) {
            let _ = self.send(vec![Command::Unwatch]).await;
        }
    }

    /// Starts an attempt (see [`Tracked::start`](super::tracked::Tracked::start)), unless
    /// its first round went out ahead (the attempt started then, when what the link keeps
    /// served it).
    pub(super) fn start(&mut self) {
        if let Conn::Link(link, _) = self {
            if link.ahead.is_none() {
                link.tracked.start();
            }
        }
    }

    /// Keeps nothing of what this attempt reads (see
    /// [`Tracked::keep_nothing`](super::tracked::Tracked::keep_nothing)).
    pub(super) fn keep_nothing(&mut self) {
        if let Conn::Link(link, _) = self {
            link.tracked.keep_nothing();
        }
    }

    /// Whether this attempt read `key` from what its link keeps.
    pub(super) fn served(&self, key: &str) -> bool {
        matches!(self, Conn::Link(link, _) if link.tracked.served(key))
    }

    /// Breaks off a link that met an error (a server that turned replica answers every
    /// write with `READONLY`): the next edit connects again, to where the writer pool is.
    pub(super) fn break_off(&mut self) {
        if let Conn::Link(link, _) = self {
            link.break_off();
        }
    }

    /// Whether the link is to keep the text of `len` bytes the attempt writes to `key`.
    pub(super) fn keeps_text(&mut self, key: &str, len: usize) -> bool {
        match self {
            Conn::Link(link, _) => link.tracked.keeps_text(key, len),
            Conn::Fred(_) => false,
        }
    }

    /// Keeps `text`, written to `key` by a transaction that started its tracking again.
    pub(super) fn keep_text(&mut self, key: &str, text: Str, head: Option<Head>) {
        if let Conn::Link(link, _) = self {
            link.tracked.keep_text(key, text, head);
        }
    }

    /// The head kept with the text of `key` that this attempt read from what its link keeps.
    pub(super) fn kept_head(&self, key: &str) -> Option<Head> {
        match self {
            Conn::Link(link, _) => link.tracked.kept_head(key).cloned(),
            Conn::Fred(_) => None,
        }
    }

    /// Forgets what is kept of `key`, to read it again.
    pub(super) fn forget(&mut self, key: &str) {
        if let Conn::Link(link, _) = self {
            link.tracked.forget_key(key);
        }
    }
}

/// The replies to `commands` on `link`: those that what the link keeps answers, from there;
/// the others in one round trip (going `way`: [`Way::Synced`], a `PING` where there are
/// none).
/// A reply taken from what is kept holds only if no invalidation of its key arrives in the
/// round trip: otherwise the command is sent again. What the commands write is forgotten
/// (with `NOLOOP` the server says nothing of a link's own writes, and stops tracking the
/// key). [`Way::Carrying`], the first round of the edit first in line goes out in the same
/// write, after these.
async fn send_on_link(
    link: &mut Link,
    timeout: Duration,
    commands: Vec<Command>,
    way: Way,
) -> Vec<Result<Value, FredError>> {
    if link.ahead.take().is_some() {
        // A round sent ahead that its edit did not take: its `WATCH` ends.
        let _ = round_on_link(link, timeout, &[Command::Unwatch]).await;
    }
    let mut wire = Vec::with_capacity(commands.len());
    let mut part = Part::split(link, commands, &mut wire);
    if way == Way::Synced && wire.is_empty() {
        wire.push(Command::Other(vec!["PING".to_owned()]));
    }
    let next = (way == Way::Carrying)
        .then(|| link.take_next())
        .flatten()
        .map(|first| {
            // What this round writes is not to serve the next edit; its attempt starts.
            link.tracked.forget_written(&wire);
            link.tracked.start();
            Part::split(link, first, &mut wire)
        });
    let round = round_on_link(link, timeout, &wire).await;
    link.tracked.forget_written(&wire);
    if let Some(mut next) = next {
        let stale = next.fill(&round);
        link.ahead = Some(Ahead {
            replies: next.replies,
            stale,
        });
    }
    let stale = part.fill(&round);
    let mut replies = part.replies;
    again(link, timeout, stale, &mut replies).await;
    finish(replies)
}

/// Reads again the commands served from what was kept whose key an invalidation named.
async fn again(
    link: &mut Link,
    timeout: Duration,
    stale: Vec<(usize, Command)>,
    replies: &mut [Option<Result<Value, FredError>>],
) {
    if stale.is_empty() {
        return;
    }
    let (at, again): (Vec<usize>, Vec<Command>) = stale.into_iter().unzip();
    for key in again.iter().filter_map(Command::read_key) {
        link.tracked.unserve(key);
    }
    let round = round_on_link(link, timeout, &again).await;
    for (n, reply) in at.into_iter().zip(round.replies) {
        replies[n] = Some(reply);
    }
}

/// The replies of a round's commands, each known by now (one that is not is an error).
fn finish(replies: Vec<Option<Result<Value, FredError>>>) -> Vec<Result<Value, FredError>> {
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(FredError::new(ErrorKind::Unknown, "no reply"))))
        .collect()
}

/// The commands of one edit's round: their replies, those served from what the link keeps,
/// and where the others stand among the commands sent.
struct Part {
    replies: Vec<Option<Result<Value, FredError>>>,
    /// Each command served, with its place.
    served: Vec<(usize, Command)>,
    /// Each command sent: its place, and its place among the commands sent.
    slots: Vec<(usize, usize)>,
}

impl Part {
    /// Serves what the link keeps of `commands` and adds the others to `wire`.
    fn split(link: &mut Link, commands: Vec<Command>, wire: &mut Vec<Command>) -> Part {
        let n = commands.len();
        let mut part = Part {
            replies: Vec::with_capacity(n),
            served: Vec::new(),
            slots: Vec::with_capacity(n),
        };
        for (n, command) in commands.into_iter().enumerate() {
            let kept = link.tracked.serve(&command);
            if kept.is_some() {
                part.served.push((n, command));
            } else {
                part.slots.push((n, wire.len()));
                wire.push(command);
            }
            part.replies.push(kept.map(Ok));
        }
        part
    }

    /// Takes the replies of its commands sent in `round`; returns the served commands
    /// whose key an invalidation named.
    fn fill(&mut self, round: &Round) -> Vec<(usize, Command)> {
        for (n, sent) in &self.slots {
            self.replies[*n] = round.replies.get(*sent).cloned();
        }
        std::mem::take(&mut self.served)
            .into_iter()
            .filter(|(_, command)| command.read_key().is_some_and(|key| round.names(key)))
            .collect()
    }
}

/// One round trip of `wire` on `link` within `timeout` (the link is broken off when it
/// runs out: a reply may still come), keeping what its reads of index sets and metadata
/// hashes return (the server tracks every key a link reads).
async fn round_on_link(link: &mut Link, timeout: Duration, wire: &[Command]) -> Round {
    if wire.is_empty() {
        return Round::default();
    }
    let sent = Instant::now();
    let Ok(round) = tokio::time::timeout(timeout, link.round(wire)).await else {
        link.break_off();
        let timed_out = FredError::new(ErrorKind::Timeout, "Request timed out.");
        return Round {
            replies: wire.iter().map(|_| Err(timed_out.clone())).collect(),
            pushes: Vec::new(),
            asked: Vec::new(),
        };
    };
    let mut later: Vec<&Invalidated> = Vec::new();
    for (n, command) in wire.iter().enumerate() {
        if let Ok(reply) = &round.replies[n] {
            // (Most round trips bring no invalidation: nothing to gather then.)
            later.clear();
            later.extend(
                round
                    .pushes
                    .iter()
                    .filter(|(before, _)| *before > n)
                    .map(|(_, keys)| keys),
            );
            let asked = round.asked.get(n).copied().unwrap_or(false);
            link.tracked.note(command, reply, sent, &later, asked);
        }
    }
    round
}
