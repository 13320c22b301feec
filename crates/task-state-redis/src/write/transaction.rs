//! `MULTI` … `EXEC` on an attempt's connection: what it did ([`Exec`]) or why the server
//! refused it ([`Refused`]), and the keys it wrote forgotten by the link that keeps them.

use fred::prelude::Value;

use super::commands::Command;
use super::conn::{Conn, Way};

/// What `MULTI` … `EXEC` did.
pub(super) enum Exec {
    /// Written: the replies of the writes, in order.
    Applied(Vec<Value>),
    /// A watched key changed: nothing written.
    Raced,
}

/// An error reply to `MULTI` … `EXEC`.
pub(super) struct Refused {
    /// The first error: a command refused while queued (out of memory, read-only, no
    /// replicas, a slot elsewhere) says why `EXEC` was refused.
    pub(super) error: fred::prelude::Error,
    /// `EXEC` was refused (`EXECABORT`): nothing was written.
    pub(super) aborted: bool,
}

impl Refused {
    /// Whether the server refused because its first word is `word` (`OOM`, `MOVED`).
    pub(super) fn said(&self, word: &str) -> bool {
        self.error.details().split_whitespace().next() == Some(word)
    }

    /// Nothing written, because the key's slot is served elsewhere or is moving: the
    /// script, which follows the cluster's redirections, makes the write.
    pub(super) fn redirected(&self) -> bool {
        self.aborted
            && ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"]
                .iter()
                .any(|w| self.said(w))
    }
}

/// `MULTI`, `writes`, `EXEC` on `conn`, on which the keys the writes change are then
/// forgotten (with `NOLOOP` the server says nothing of a connection's own writes).
///
/// # Errors
/// The first error reply, after which the link is not used again; or an `EXEC` reply that
/// is neither the writes' nor nil.
pub(super) async fn exec(
    conn: &mut Conn<'_>,
    writes: Vec<Command>,
) -> std::result::Result<Exec, Refused> {
    exec_then(conn, writes, Vec::new())
        .await
        .map(|(exec, _)| exec)
}

/// [`exec`], with `reads` sent after `EXEC` in the same round trip: their replies too, each
/// `None` where it failed (what they read is read after the writes, and a kept reply holds
/// as if read when `EXEC`'s reply came).
///
/// # Errors
/// As [`exec`]'s; a failed read is none.
pub(super) async fn exec_then(
    conn: &mut Conn<'_>,
    writes: Vec<Command>,
    reads: Vec<Command>,
) -> std::result::Result<(Exec, Vec<Option<Value>>), Refused> {
    exec_after(conn, Vec::new(), writes, reads, Way::Plain).await
}

/// [`exec_then`], with `before` sent ahead of `MULTI` in the same round trip (an error
/// reply to one of them is one to the transaction), the round trip going `way`.
pub(super) async fn exec_after(
    conn: &mut Conn<'_>,
    before: Vec<Command>,
    writes: Vec<Command>,
    reads: Vec<Command>,
    way: Way,
) -> std::result::Result<(Exec, Vec<Option<Value>>), Refused> {
    let mut all = Vec::with_capacity(before.len() + writes.len() + 2 + reads.len());
    all.extend(before);
    all.push(Command::Multi);
    all.extend(writes);
    all.push(Command::Exec);
    let exec_at = all.len();
    all.extend(reads);
    let mut replies = conn.send_as(all, way).await;
    let read: Vec<Option<Value>> = replies
        .split_off(exec_at.min(replies.len()))
        .into_iter()
        .map(Result::ok)
        .collect();
    let aborted = matches!(replies.last(), Some(Err(e)) if e.details().starts_with("EXECABORT"));
    if let Some(Err(error)) = replies.iter().find(|r| r.is_err()) {
        conn.break_off();
        return Err(Refused {
            error: error.clone(),
            aborted,
        });
    }
    match replies.pop() {
        Some(Ok(Value::Null)) => Ok((Exec::Raced, read)),
        Some(Ok(Value::Array(results))) => Ok((Exec::Applied(results), read)),
        other => Err(Refused {
            error: fred::prelude::Error::new(
                fred::prelude::ErrorKind::Protocol,
                format!("unexpected EXEC reply {other:?}"),
            ),
            aborted: false,
        }),
    }
}
