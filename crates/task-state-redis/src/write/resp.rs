//! RESP on a link: a round trip's commands as the bytes of one write, and the frames that
//! come back as fred's values (replies, refusals, invalidations).

use fred::bytes::BytesMut;
use fred::bytes_utils::Str;
use fred::prelude::{Error as FredError, ErrorKind, Value};
use redis_protocol::resp3::types::{BytesFrame, Resp3Frame as _};

use super::commands::{Command, CACHING_YES};
use super::tracked::Invalidated;

/// The bytes still to come of a bulk string that `unread` starts with (`$<length>\r\n…`),
/// from its header; `None` for any other frame or a header not read whole.
pub(super) fn announced(unread: &[u8]) -> Option<usize> {
    let header = unread.strip_prefix(b"$")?;
    let digits = header.iter().position(|&b| b == b'\r')?;
    let length: usize = std::str::from_utf8(&header[..digits]).ok()?.parse().ok()?;
    // `$`, the digits, CRLF, the text, CRLF; what is read already is not to come.
    (1 + digits + 2 + length + 2).checked_sub(unread.len())
}

/// The bytes of a round trip: each of `commands` as a RESP array of bulk strings, after
/// `CLIENT CACHING YES` where it is `asked`, written in one buffer of the size they need.
/// The words are borrowed from the commands (a record's text is copied once, into the
/// buffer).
pub(super) fn encode(commands: &[Command], asked: &[bool]) -> BytesMut {
    // Tracking is opt-in (`OPTIN`): the server remembers the keys of the next command only,
    // and only the reads whose replies are kept ask it to. A key the server remembered
    // costs it a little at every read and write of it (about a sixth of an edit's
    // instructions when every read was remembered).
    // `None` stands for `CLIENT CACHING YES`.
    let sent = || {
        commands
            .iter()
            .zip(asked)
            .flat_map(|(command, asked)| asked.then_some(None).into_iter().chain([Some(command)]))
    };
    let words = |command: Option<&Command>, word: &mut dyn FnMut(&[u8])| match command {
        Some(command) => command.each_word(&mut |w| word(w)),
        None => CACHING_YES.iter().for_each(|w| word(w.as_bytes())),
    };
    // Each command's number of words, and the bytes of all: then the bytes themselves.
    let mut counts = Vec::with_capacity(commands.len());
    let mut size = 0;
    for command in sent() {
        let mut count = 0;
        words(command, &mut |word| {
            count += 1;
            size += header_len(word.len()) + word.len() + 2;
        });
        counts.push(count);
        size += header_len(count);
    }
    let mut out = BytesMut::with_capacity(size);
    for (command, count) in sent().zip(counts) {
        put_header(&mut out, b'*', count);
        words(command, &mut |word| {
            put_header(&mut out, b'$', word.len());
            out.extend_from_slice(word);
            out.extend_from_slice(b"\r\n");
        });
    }
    out
}

/// The bytes of the header of an array or a bulk string of `n` (`*<n>\r\n`, `$<n>\r\n`).
fn header_len(n: usize) -> usize {
    1 + itoa::Buffer::new().format(n).len() + 2
}

/// `*<n>\r\n` (an array's header) or `$<n>\r\n` (a bulk string's).
fn put_header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The keys of an invalidation push, from its items (`None` for any other push).
pub(super) fn invalidated(data: &[BytesFrame]) -> Option<Invalidated> {
    let [kind, keys] = data else {
        return None;
    };
    if !matches!(kind, BytesFrame::BlobString { data, .. } | BytesFrame::SimpleString { data, .. } if &data[..] == b"invalidate")
    {
        return None;
    }
    Some(match keys {
        BytesFrame::Array { data, .. } => Invalidated::Keys(
            data.iter()
                .filter_map(|key| match key {
                    BytesFrame::BlobString { data, .. } => {
                        Some(String::from_utf8_lossy(data).into_owned())
                    }
                    _ => None,
                })
                .collect(),
        ),
        // `FLUSHDB`, `FLUSHALL`: every key.
        _ => Invalidated::All,
    })
}

/// The value of a reply frame, as fred would give it.
pub(super) fn value(frame: BytesFrame) -> Result<Value, FredError> {
    Ok(match frame {
        BytesFrame::BlobString { data, .. }
        | BytesFrame::SimpleString { data, .. }
        | BytesFrame::VerbatimString { data, .. } => match Str::from_inner(data) {
            Ok(text) => Value::String(text),
            Err(e) => Value::Bytes(e.into_inner()),
        },
        BytesFrame::Number { data, .. } => Value::Integer(data),
        BytesFrame::Null => Value::Null,
        BytesFrame::Boolean { data, .. } => Value::Boolean(data),
        BytesFrame::Double { data, .. } => Value::Double(data),
        BytesFrame::Array { data, .. } => {
            Value::Array(data.into_iter().map(value).collect::<Result<_, _>>()?)
        }
        // `HELLO`'s: its pairs in a row.
        BytesFrame::Map { data, .. } => Value::Array(
            data.into_iter()
                .flat_map(|(k, v)| [value(k), value(v)])
                .collect::<Result<_, _>>()?,
        ),
        BytesFrame::SimpleError { data, .. } => return Err(refusal(&data)),
        BytesFrame::BlobError { data, .. } => return Err(refusal(&String::from_utf8_lossy(&data))),
        other => {
            let kind = other.kind();
            return Err(FredError::new(
                ErrorKind::Protocol,
                format!("unexpected reply {kind:?}"),
            ));
        }
    })
}

/// A server's error reply, of the kind fred gives it.
pub(super) fn refusal(message: &str) -> FredError {
    let kind = match message.split_whitespace().next() {
        Some("WRONGTYPE") => ErrorKind::InvalidArgument,
        Some("NOAUTH" | "WRONGPASS") => ErrorKind::Auth,
        _ => ErrorKind::Unknown,
    };
    FredError::new(kind, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_string_announces_the_bytes_still_to_come() {
        assert_eq!(announced(b"$10\r\n0123"), Some(10 - 4 + 2));
        assert_eq!(announced(b"$3\r\nabc\r\n"), Some(0));
        assert_eq!(announced(b"$1018424\r\n"), Some(1_018_424 + 2));
        // Not a bulk string, a header not read whole, a header that is no length.
        for unread in [
            &b"+OK\r\n"[..],
            b"*2\r\n$3\r\n",
            b"$10",
            b"$-1\r\n",
            b"$x\r\n",
            b"",
        ] {
            assert_eq!(
                announced(unread),
                None,
                "{}",
                String::from_utf8_lossy(unread)
            );
        }
    }

    #[test]
    fn a_round_trip_is_its_commands_in_resp_with_caching_before_each_kept_read() {
        let set = |ttl, if_equal: Option<&str>| Command::Set {
            key: "task:1".to_owned(),
            text: Str::from_static("{\"é\":1}"),
            ttl,
            if_equal: if_equal.map(|old| Str::from(old.to_owned())),
        };
        let commands = [
            Command::Watch(vec!["task:1".to_owned(), "task:1:metadata".to_owned()]),
            Command::Sismember("index:tasks".to_owned(), "1".to_owned()),
            Command::Hmget("task:1:metadata".to_owned(), vec!["service", "user_id"]),
            set(1500, None),
            set(-1, Some("old")),
            Command::Pexpire {
                key: "index:tasks".to_owned(),
                milliseconds: 42,
                greater: true,
            },
        ];
        let out = encode(&commands, &[false, true, false, false, false, false]);
        let expected = concat!(
            "*3\r\n$5\r\nWATCH\r\n$6\r\ntask:1\r\n$15\r\ntask:1:metadata\r\n",
            "*3\r\n$6\r\nCLIENT\r\n$7\r\nCACHING\r\n$3\r\nYES\r\n",
            "*3\r\n$9\r\nSISMEMBER\r\n$11\r\nindex:tasks\r\n$1\r\n1\r\n",
            "*4\r\n$5\r\nHMGET\r\n$15\r\ntask:1:metadata\r\n$7\r\nservice\r\n$7\r\nuser_id\r\n",
            // The record's length in bytes, not characters.
            "*5\r\n$3\r\nSET\r\n$6\r\ntask:1\r\n$8\r\n{\"é\":1}\r\n$2\r\nPX\r\n$4\r\n1500\r\n",
            "*6\r\n$3\r\nSET\r\n$6\r\ntask:1\r\n$8\r\n{\"é\":1}\r\n$4\r\nIFEQ\r\n$3\r\nold\r\n$7\r\nKEEPTTL\r\n",
            "*4\r\n$7\r\nPEXPIRE\r\n$11\r\nindex:tasks\r\n$2\r\n42\r\n$2\r\nGT\r\n",
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        assert_eq!(out.capacity(), out.len(), "one buffer of the size needed");
    }
}
