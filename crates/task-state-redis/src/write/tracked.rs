//! What a [`Link`](super::link::Link) read under client-side caching and still holds: the
//! membership and TTL of index sets and the owner fields and TTL of metadata hashes, each
//! kept until the server invalidates its key (or the link writes it: with `NOLOOP` the server
//! says nothing of a link's own writes, but stops tracking the key for every client); and
//! the text of records the link wrote, from a size on ([`KeptRecords`]): the transaction
//! that writes one starts its tracking again (`CLIENT CACHING YES` before `MULTI`, the
//! record's `PTTL` after its `SET`), so that the server tells of any later write.
//!
//! A read served from here is as good as the same read made in the round trip whose replies
//! showed no invalidation of its key: the server sends the invalidation of a change before
//! the reply of any command that runs after it, on the same connection. A TTL is kept as
//! read, with the moment the round trip was sent, so what is left of it is never
//! overestimated; one that may have run out is read again.

use foldhash::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use fred::bytes_utils::Str;
use fred::prelude::Value;
use task_state_core::TaskStatus;

use super::commands::Command;
use super::edit::Layout;
use super::known::Owner;
use crate::settings::KeptRecords;

/// The most keys kept; the memory starts again empty when full (the server goes on sending
/// invalidations of the keys dropped, which then name nothing).
const KEYS_KEPT: usize = 8_192;

/// How many attempts read a hot key without tracking it before it is tracked again. A key is
/// hot when another client's write ended what was kept of it in the attempt that kept it or
/// the next (`index:tasks` and a service's set while tasks are created between most edits):
/// starting its tracking again costs the server a `CLIENT CACHING YES` and its remembering
/// the key, in vain where the next write comes before the next read. A key that served a
/// few attempts before a write ended it is tracked again at its next read.
const HOT_READS: u8 = 8;

/// The keys an invalidation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Invalidated {
    Keys(Vec<String>),
    /// Every key (`FLUSHDB`, `FLUSHALL`).
    All,
}

impl Invalidated {
    pub(super) fn names(&self, key: &str) -> bool {
        match self {
            Invalidated::Keys(keys) => keys.iter().any(|k| k == key),
            Invalidated::All => true,
        }
    }
}

/// What is known of one key.
#[derive(Debug, Default)]
struct Known {
    /// PTTL as read, and when the read was sent.
    pttl: Option<(i64, Instant)>,
    /// `SISMEMBER` replies, by member.
    members: HashMap<String, bool>,
    /// An `HMGET` reply, with its fields.
    fields: Option<(Vec<&'static str>, Value)>,
    /// The text of a record the link wrote (its `GET`).
    text: Option<Str>,
    /// The head of that text, where the write knew it.
    head: Option<Head>,
    /// The attempt that started keeping it.
    since: u64,
}

/// What a record's head names (its owner, its status) and where its members stand, kept
/// with a text the link wrote: the next edit of that text need not read it through again to
/// know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) owner: Owner,
    pub(super) status: TaskStatus,
    pub(super) layout: Layout,
}

/// The keys a link tracks, and what it read of them.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    keys: HashMap<String, Known>,
    /// The keys whose replies the current attempt took from here.
    served: HashSet<String>,
    /// The current attempt keeps nothing new (a delete, whose keys go).
    keeps_nothing: bool,
    /// The hot keys, each with the attempts left that read it without tracking it.
    hot: HashMap<String, u8>,
    /// The hot keys the current attempt read.
    hot_read: HashSet<String>,
    /// The attempts started.
    attempts: u64,
    /// Which records' texts are kept, and the bytes left for them on every link.
    texts: Option<(usize, Arc<AtomicUsize>)>,
    /// The bytes of the texts kept here (taken from the budget).
    text_bytes: usize,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.release_texts();
    }
}

impl Tracked {
    /// Keeps the texts of records as `kept` says, out of the bytes `left` on all the links.
    pub(super) fn keep_texts(&mut self, kept: KeptRecords, left: Arc<AtomicUsize>) {
        self.texts = Some((kept.from_bytes, left));
    }

    /// Whether a text of `len` bytes that the current attempt writes to `key` is to be kept:
    /// its transaction then starts the tracking of `key` again. Not for a key another
    /// client writes between most edits (a hot key), for which that would cost the server
    /// in vain.
    pub(super) fn keeps_text(&mut self, key: &str, len: usize) -> bool {
        let Some((from, left)) = &self.texts else {
            return false;
        };
        // Room for it: what is left, and what the texts kept here would give back.
        let room = left.load(Ordering::Acquire).saturating_add(self.text_bytes);
        if self.keeps_nothing || len < *from || len > room {
            return false;
        }
        if self.hot.contains_key(key) {
            self.hot_read.insert(key.to_owned());
            return false;
        }
        true
    }

    /// Keeps `text`, which the link wrote to `key` in a transaction that started the key's
    /// tracking again, with its `head` where the write knew it, where the budget has room
    /// (the texts kept here give theirs back when it has none).
    pub(super) fn keep_text(&mut self, key: &str, text: Str, head: Option<Head>) {
        let Some((_, left)) = &self.texts else {
            return;
        };
        let left = Arc::clone(left);
        let take = |bytes: usize| {
            left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_sub(bytes)
            })
            .is_ok()
        };
        if !take(text.len()) {
            self.release_texts();
            if !take(text.len()) {
                return;
            }
        }
        self.forget_key(key);
        if self.keys.len() >= KEYS_KEPT {
            self.clear();
        }
        self.text_bytes += text.len();
        let since = self.attempts;
        let known = Known {
            text: Some(text),
            head,
            since,
            ..Known::default()
        };
        self.keys.insert(key.to_owned(), known);
    }

    /// Gives the bytes of `known`'s text back to the budget.
    fn release(&mut self, known: &Known) {
        if let (Some(text), Some((_, left))) = (&known.text, &self.texts) {
            left.fetch_add(text.len(), Ordering::AcqRel);
            self.text_bytes -= text.len();
        }
    }

    /// Drops every record kept here (its text and what was read with it: a record's TTL is
    /// read at every edit), and gives their bytes back.
    fn release_texts(&mut self) {
        if let Some((_, left)) = &self.texts {
            left.fetch_add(self.text_bytes, Ordering::AcqRel);
        }
        self.text_bytes = 0;
        self.keys.retain(|_, known| known.text.is_none());
    }

    /// Forgets every key.
    fn clear(&mut self) {
        self.release_texts();
        self.keys.clear();
    }

    /// Starts an attempt: no key served yet.
    pub(super) fn start(&mut self) {
        self.attempts += 1;
        self.served.clear();
        self.keeps_nothing = false;
        for key in std::mem::take(&mut self.hot_read) {
            if let Some(left) = self.hot.get_mut(&key) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.hot.remove(&key);
                }
            }
        }
    }

    /// Keeps nothing of what the current attempt reads: the server is not asked to track
    /// its reads (each key it tracks costs it at every read and write of the key), and
    /// replies kept before still serve.
    pub(super) fn keep_nothing(&mut self) {
        self.keeps_nothing = true;
    }

    /// Whether the server is to start tracking the key of `command` (`CLIENT CACHING YES`
    /// before it: tracking is opt-in): a read whose reply starts what is kept of a key that
    /// is neither kept already (the server tracks it until it says otherwise) nor hot, in an
    /// attempt that keeps what it reads.
    pub(super) fn asks(&self, command: &Command) -> bool {
        !self.keeps_nothing
            && Self::tracks(command)
            && command
                .read_key()
                .is_some_and(|key| !self.hot.contains_key(key) && !self.keys.contains_key(key))
    }

    /// Whether the current attempt took a reply about `key` from here.
    pub(super) fn served(&self, key: &str) -> bool {
        self.served.contains(key)
    }

    /// The head kept with the text of `key`, where the current attempt took that text from
    /// here (its `GET` served, and no invalidation of it in the round trip).
    pub(super) fn kept_head(&self, key: &str) -> Option<&Head> {
        if !self.served.contains(key) {
            return None;
        }
        let known = self.keys.get(key)?;
        known.text.as_ref().and(known.head.as_ref())
    }

    /// Notes that the current attempt read `key` from the server after all.
    pub(super) fn unserve(&mut self, key: &str) {
        self.served.remove(key);
    }

    /// The reply to `command` that what is kept gives, if any.
    pub(super) fn serve(&mut self, command: &Command) -> Option<Value> {
        let (key, reply) = match command {
            Command::Sismember(key, member) => {
                let known = self.keys.get(key)?;
                (key, Value::Integer(i64::from(*known.members.get(member)?)))
            }
            // A record's TTL is read at every edit: the link's writes change it.
            Command::Pttl(key) if self.keys.get(key)?.text.is_some() => return None,
            Command::Pttl(key) => (key, Value::Integer(self.pttl_left(key)?)),
            Command::Get(key) => (key, Value::String(self.keys.get(key)?.text.clone()?)),
            Command::Hmget(key, fields) => match &self.keys.get(key)?.fields {
                Some((kept, value)) if kept == fields => (key, value.clone()),
                _ => return None,
            },
            _ => return None,
        };
        if !self.served.contains(key) {
            self.served.insert(key.clone());
        }
        Some(reply)
    }

    /// What is left of `key`'s TTL: -1 (none) as read; a positive TTL less the time since
    /// the read was sent; `None` when it may have run out.
    fn pttl_left(&self, key: &str) -> Option<i64> {
        let (pttl, at) = self.keys.get(key)?.pttl?;
        if pttl < 0 {
            return (pttl == -1).then_some(-1);
        }
        let spent = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        let left = pttl.saturating_sub(spent);
        (left > 0).then_some(left)
    }

    /// Whether what `command` returns starts what is kept of its key: the membership of an
    /// index set, the fields of a metadata hash (a `PTTL` is kept only with them: not the
    /// record's, which a link writes at every edit).
    fn tracks(command: &Command) -> bool {
        matches!(command, Command::Sismember(..) | Command::Hmget(..))
    }

    /// Keeps what `command` returned (`reply`), read in a round trip sent at `sent`, unless
    /// an invalidation of its key came after it (`later`): for a key kept already (no
    /// invalidation of it in the round trip, so the server tracked it throughout), or one
    /// whose tracking the command started (`asked`). A `PTTL` is kept only for a key kept.
    pub(super) fn note(
        &mut self,
        command: &Command,
        reply: &Value,
        sent: Instant,
        later: &[&Invalidated],
        asked: bool,
    ) {
        let key = match command {
            Command::Sismember(key, _) | Command::Pttl(key) | Command::Hmget(key, _) => key,
            _ => return,
        };
        if self.keeps_nothing {
            return;
        }
        if self.hot.contains_key(key) {
            // Read without tracking: a reply of this attempt's only.
            if Self::tracks(command) {
                self.hot_read.insert(key.clone());
            }
            return;
        }
        if later.iter().any(|i| i.names(key)) {
            return;
        }
        if !self.keys.contains_key(key) {
            if !asked {
                return;
            }
            if self.keys.len() >= KEYS_KEPT {
                self.clear();
            }
        }
        let since = self.attempts;
        if !self.keys.contains_key(key) {
            let known = Known {
                since,
                ..Known::default()
            };
            self.keys.insert(key.clone(), known);
        }
        let Some(known) = self.keys.get_mut(key) else {
            return;
        };
        match (command, reply) {
            (Command::Sismember(_, member), Value::Integer(n)) => {
                known.members.insert(member.clone(), *n == 1);
            }
            (Command::Pttl(_), Value::Integer(n)) => known.pttl = Some((*n, sent)),
            (Command::Hmget(_, fields), Value::Array(_)) => {
                known.fields = Some((fields.clone(), reply.clone()));
            }
            _ => {}
        }
    }

    /// Drops what is kept of the keys `invalidations` name.
    pub(super) fn forget<'a>(&mut self, invalidations: impl IntoIterator<Item = &'a Invalidated>) {
        for invalidated in invalidations {
            match invalidated {
                // A flush is no sign of writes to come.
                Invalidated::All => {
                    self.clear();
                    self.hot.clear();
                }
                Invalidated::Keys(keys) => {
                    for key in keys {
                        let Some(known) = self.keys.remove(key) else {
                            continue;
                        };
                        self.release(&known);
                        if self.attempts.saturating_sub(known.since) <= 1 {
                            if self.hot.len() >= KEYS_KEPT {
                                self.hot.clear();
                            }
                            self.hot.insert(key.clone(), HOT_READS);
                        }
                    }
                }
            }
        }
    }

    /// Drops what is kept of the keys `commands` write: with `NOLOOP` the server says nothing
    /// of a link's own writes, and stops tracking the key.
    pub(super) fn forget_written(&mut self, commands: &[Command]) {
        for key in commands.iter().flat_map(Command::written) {
            self.forget_key(key);
        }
    }

    /// Drops what is kept of `key` (the link wrote it).
    pub(super) fn forget_key(&mut self, key: &str) {
        if let Some(known) = self.keys.remove(key) {
            self.release(&known);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_read(tracked: &mut Tracked, key: &str, later: &[&Invalidated]) {
        let now = Instant::now();
        let member = Command::Sismember(key.to_owned(), "t".to_owned());
        tracked.note(&member, &Value::Integer(1), now, later, true);
        tracked.note(
            &Command::Pttl(key.to_owned()),
            &Value::Integer(60_000),
            now,
            later,
            false,
        );
    }

    #[test]
    fn a_read_is_served_until_its_key_is_invalidated() {
        let mut tracked = Tracked::default();
        set_read(&mut tracked, "index:tasks", &[]);
        tracked.start();
        let member = Command::Sismember("index:tasks".to_owned(), "t".to_owned());
        assert_eq!(tracked.serve(&member), Some(Value::Integer(1)));
        let Some(Value::Integer(left)) = tracked.serve(&Command::Pttl("index:tasks".to_owned()))
        else {
            panic!("the TTL is kept");
        };
        assert!(left <= 60_000 && left > 50_000);
        assert!(tracked.served("index:tasks"));
        let other = Command::Sismember("index:tasks".to_owned(), "u".to_owned());
        assert_eq!(tracked.serve(&other), None);
        // The server tracks the key already: another member's read asks for nothing, and
        // is kept.
        assert!(!tracked.asks(&other));
        tracked.note(&other, &Value::Integer(0), Instant::now(), &[], false);
        assert_eq!(tracked.serve(&other), Some(Value::Integer(0)));
        tracked.forget([&Invalidated::Keys(vec!["index:tasks".to_owned()])]);
        assert_eq!(tracked.serve(&member), None);
    }

    #[test]
    fn a_read_invalidated_after_its_reply_is_not_kept_nor_a_ttl_of_an_untracked_key() {
        let mut tracked = Tracked::default();
        let later = Invalidated::Keys(vec!["s".to_owned()]);
        set_read(&mut tracked, "s", &[&later]);
        assert!(tracked.keys.is_empty());
        tracked.note(
            &Command::Pttl("task:1".to_owned()),
            &Value::Integer(5),
            Instant::now(),
            &[],
            false,
        );
        assert!(tracked.keys.is_empty());
        set_read(
            &mut tracked,
            "s",
            &[&Invalidated::Keys(vec!["x".to_owned()])],
        );
        tracked.forget([&Invalidated::All]);
        assert!(tracked.keys.is_empty());
    }

    #[test]
    fn an_attempt_that_keeps_nothing_asks_for_no_tracking_and_keeps_no_reply() {
        let mut tracked = Tracked::default();
        let member = Command::Sismember("s".to_owned(), "t".to_owned());
        let hash = Command::Hmget("h".to_owned(), vec!["service"]);
        assert!(tracked.asks(&member) && tracked.asks(&hash));
        assert!(!tracked.asks(&Command::Get("task:t".to_owned())));
        assert!(!tracked.asks(&Command::Pttl("s".to_owned())));
        set_read(&mut tracked, "kept", &[]);
        tracked.start();
        tracked.keep_nothing();
        assert!(!tracked.asks(&member) && !tracked.asks(&hash));
        set_read(&mut tracked, "s", &[]);
        assert_eq!(tracked.serve(&member), None, "nothing new is kept");
        let kept = Command::Sismember("kept".to_owned(), "t".to_owned());
        assert_eq!(
            tracked.serve(&kept),
            Some(Value::Integer(1)),
            "the kept still serve"
        );
        tracked.start();
        assert!(tracked.asks(&member), "the next attempt keeps again");
    }

    #[test]
    fn a_key_another_client_writes_is_read_untracked_for_a_while() {
        let mut tracked = Tracked::default();
        let member = Command::Sismember("s".to_owned(), "t".to_owned());
        set_read(&mut tracked, "s", &[]);
        set_read(&mut tracked, "own", &[]);
        tracked.forget_key("own");
        tracked.forget([&Invalidated::Keys(vec![
            "s".to_owned(),
            "never-read".to_owned(),
        ])]);
        assert!(tracked.asks(&Command::Sismember("own".to_owned(), "t".to_owned())));
        assert!(tracked.asks(&Command::Sismember("never-read".to_owned(), "t".to_owned())));
        for _ in 0..HOT_READS {
            tracked.start();
            assert!(!tracked.asks(&member), "hot: read without tracking");
            set_read(&mut tracked, "s", &[]);
            assert_eq!(tracked.serve(&member), None, "and not kept");
        }
        tracked.start();
        assert!(
            tracked.asks(&member),
            "tracked again after {HOT_READS} reads"
        );
        set_read(&mut tracked, "s", &[]);
        tracked.forget([&Invalidated::Keys(vec!["s".to_owned()])]);
        tracked.start();
        assert!(!tracked.asks(&member));
        tracked.forget([&Invalidated::All]);
        assert!(tracked.asks(&member), "a flush cools every key");
        // A key that served a few attempts before a write ended it is no hot key.
        set_read(&mut tracked, "s", &[]);
        for _ in 0..3 {
            tracked.start();
            assert_eq!(tracked.serve(&member), Some(Value::Integer(1)));
        }
        tracked.forget([&Invalidated::Keys(vec!["s".to_owned()])]);
        tracked.start();
        assert!(tracked.asks(&member), "tracked again at once");
    }

    /// Two links' memories of record texts, sharing a budget of `budget` bytes, keeping
    /// texts from 4 bytes.
    fn keeping_texts(budget: usize) -> (Tracked, Tracked, Arc<AtomicUsize>) {
        let left = Arc::new(AtomicUsize::new(budget));
        let kept = KeptRecords {
            from_bytes: 4,
            budget_bytes: budget,
        };
        let (mut one, mut two) = (Tracked::default(), Tracked::default());
        one.keep_texts(kept, Arc::clone(&left));
        two.keep_texts(kept, Arc::clone(&left));
        (one, two, left)
    }

    #[test]
    fn a_kept_head_is_given_only_with_its_text_served_in_the_attempt() {
        let (mut one, _, _) = keeping_texts(100);
        let head = Head {
            owner: ("render".to_owned(), "alice".to_owned()),
            status: TaskStatus::Running,
            layout: Layout::default(),
        };
        let get = Command::Get("task:1".to_owned());
        one.keep_text("task:1", Str::from("0123456789"), Some(head.clone()));
        one.start();
        assert_eq!(one.kept_head("task:1"), None, "its text not read yet");
        assert!(one.serve(&get).is_some());
        assert_eq!(one.kept_head("task:1"), Some(&head));
        // Read from the server after all (an invalidation in the round trip): no head.
        one.unserve("task:1");
        assert_eq!(one.kept_head("task:1"), None);
        // Gone with its text; a text kept without one gives none.
        one.start();
        one.forget([&Invalidated::Keys(vec!["task:1".to_owned()])]);
        assert_eq!(one.serve(&get), None);
        assert_eq!(one.kept_head("task:1"), None);
        one.keep_text("task:2", Str::from("0123456789"), None);
        assert!(one.serve(&Command::Get("task:2".to_owned())).is_some());
        assert_eq!(one.kept_head("task:2"), None);
    }

    #[test]
    fn a_kept_text_serves_its_get_but_not_its_ttl_until_invalidated() {
        let (mut one, _, left) = keeping_texts(100);
        let get = Command::Get("task:1".to_owned());
        assert!(!one.keeps_text("task:1", 3), "too short");
        assert!(one.keeps_text("task:1", 10));
        one.keep_text("task:1", Str::from("0123456789"), None);
        assert_eq!(left.load(Ordering::Acquire), 90);
        one.note(
            &Command::Pttl("task:1".to_owned()),
            &Value::Integer(60_000),
            Instant::now(),
            &[],
            false,
        );
        one.start();
        assert_eq!(one.serve(&get), Some(Value::String("0123456789".into())));
        assert!(one.served("task:1"));
        assert_eq!(one.serve(&Command::Pttl("task:1".to_owned())), None);
        // Its own write forgets it, and the budget has its bytes back.
        one.forget_key("task:1");
        assert_eq!(one.serve(&get), None);
        assert_eq!(left.load(Ordering::Acquire), 100);
        one.keep_text("task:1", Str::from("0123456789"), None);
        one.forget([&Invalidated::Keys(vec!["task:1".to_owned()])]);
        assert_eq!(one.serve(&get), None);
        assert_eq!(left.load(Ordering::Acquire), 100);
        // Invalidated the attempt after it was kept: a hot key, not kept for a while.
        one.start();
        assert!(!one.keeps_text("task:1", 10));
        one.keep_text("task:2", Str::from("0123456789"), None);
        one.forget([&Invalidated::All]);
        assert_eq!(one.serve(&Command::Get("task:2".to_owned())), None);
        assert_eq!(left.load(Ordering::Acquire), 100);
        assert!(one.keeps_text("task:1", 10), "a flush cools every key");
    }

    #[test]
    fn the_links_keep_texts_within_one_budget() {
        let (mut one, mut two, left) = keeping_texts(25);
        one.keep_text("task:1", Str::from("0123456789"), None);
        let pttl = Command::Pttl("task:1".to_owned());
        one.note(&pttl, &Value::Integer(60_000), Instant::now(), &[], false);
        two.keep_text("task:2", Str::from("0123456789"), None);
        assert_eq!(left.load(Ordering::Acquire), 5);
        // No room: what is left and what this link keeps (15 bytes) are less than 16.
        assert!(!one.keeps_text("task:3", 16));
        assert!(
            one.keeps_text("task:3", 15),
            "what one keeps would give way"
        );
        one.keep_text("task:3", Str::from("012345678901234"), None);
        assert_eq!(
            one.serve(&Command::Get("task:1".to_owned())),
            None,
            "given way"
        );
        // What the record's entry read with its text goes with it: its TTL is read again.
        assert_eq!(one.serve(&pttl), None);
        assert!(one.serve(&Command::Get("task:3".to_owned())).is_some());
        assert_eq!(left.load(Ordering::Acquire), 0);
        // A link that goes gives its bytes back.
        drop(two);
        assert_eq!(left.load(Ordering::Acquire), 10);
        drop(one);
        assert_eq!(left.load(Ordering::Acquire), 25);
    }

    #[test]
    fn a_ttl_that_may_have_run_out_is_not_served() {
        let mut tracked = Tracked::default();
        let long_ago = Instant::now() - std::time::Duration::from_secs(2);
        let member = Command::Sismember("s".to_owned(), "t".to_owned());
        tracked.note(&member, &Value::Integer(1), long_ago, &[], true);
        tracked.note(
            &Command::Pttl("s".to_owned()),
            &Value::Integer(1_000),
            long_ago,
            &[],
            false,
        );
        assert_eq!(tracked.serve(&Command::Pttl("s".to_owned())), None);
        tracked.note(
            &Command::Pttl("s".to_owned()),
            &Value::Integer(-1),
            long_ago,
            &[],
            false,
        );
        assert_eq!(
            tracked.serve(&Command::Pttl("s".to_owned())),
            Some(Value::Integer(-1))
        );
    }
}
