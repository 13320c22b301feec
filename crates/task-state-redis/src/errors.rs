//! Failed Redis commands: what the server's error reply says, read once into a
//! [`RedisFailure`], and turned into the core [`Error`] by `From`.
//!
//! This is the one place that reads the text of fred's errors: every other module asks a
//! failure what it [`Said`].

use fred::prelude::{Error as FredError, ErrorKind};
use task_state_core::{BackendKind, Error, Refusal};

use crate::settings::RedisUrl;

/// The error of a mutation that found no connection within the command timeout, and so was
/// never handed to fred (see `Executor::on_writer`).
pub(crate) const NOT_SENT: &str = "no connection within the command timeout; not sent";

/// What a command's error reply says, classified once (see [`Said::of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    /// Never handed to fred: no connection within the command timeout ([`NOT_SENT`]).
    NotSent,
    /// A typed error a script raised with `fail(kind, key, detail)` (`lua/lib/errors.lua`).
    Typed(Typed),
    /// `NOSCRIPT`: the server lacks the script of an `EVALSHA`.
    NoScript,
    /// `Function not found`: the server lacks the library of functions.
    FunctionMissing,
    /// An unknown command, as Redis 6.2 answers `FCALL`.
    UnknownCommand,
    /// Refused unrun because the slot is served elsewhere or not at all right now
    /// (redirections past fred's limit, `TRYAGAIN`, `CLUSTERDOWN`): sending it again is safe.
    Redirected,
    /// `WRONGTYPE`: a key holds another type than the command needs.
    WrongType,
    /// The server refused for a reason of its own state, with its words from the code on.
    Refused(Refusal, String),
    /// `NOAUTH`, `WRONGPASS`, `NOPERM`.
    Auth,
    /// `INCR` on a value that is not an integer.
    NotAnInteger,
    /// Anything else (a timeout, a broken connection, another error reply).
    Other,
}

/// The fields of a typed script error: `TS<KIND>\x1f<key>\x1f<detail>\x1f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Typed {
    kind: TypedKind,
    key: String,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypedKind {
    WrongType,
    Decode,
    Invalid,
}

impl Said {
    /// Reads `e`'s reply. The order matters where one reply could match two ways: a typed
    /// error may carry a refusal's code in its detail, and the protocol answers (`NOSCRIPT`,
    /// an unknown `FCALL`) open the reply.
    pub(crate) fn of(e: &FredError) -> Said {
        let details = e.details();
        if details == NOT_SENT {
            return Said::NotSent;
        }
        if let Some(typed) = typed(details) {
            return Said::Typed(typed);
        }
        if details.starts_with("NOSCRIPT") {
            return Said::NoScript;
        }
        if details.contains("Function not found") {
            return Said::FunctionMissing;
        }
        if details.to_ascii_lowercase().contains("unknown command") {
            return Said::UnknownCommand;
        }
        if ["Too many redirections", "TRYAGAIN", "CLUSTERDOWN"]
            .iter()
            .any(|code| details.starts_with(code))
        {
            return Said::Redirected;
        }
        if details.contains("WRONGTYPE") {
            return Said::WrongType;
        }
        if let Some((refusal, words)) = refusal(details) {
            return Said::Refused(refusal, words.to_owned());
        }
        if ["NOAUTH", "WRONGPASS", "NOPERM"]
            .iter()
            .any(|code| details.starts_with(code))
        {
            return Said::Auth;
        }
        if details.contains("not an integer") {
            return Said::NotAnInteger;
        }
        Said::Other
    }
}

/// True for a `WRONGTYPE` reply.
pub(crate) fn is_wrong_type(e: &FredError) -> bool {
    Said::of(e) == Said::WrongType
}

/// Whether the server refused `e`'s command without running it because the slot's keys are
/// served elsewhere or not at all right now ([`Said::Redirected`]).
pub(crate) fn is_redirected(e: &FredError) -> bool {
    Said::of(e) == Said::Redirected
}

/// What the failed command was, for the [`Error`] it becomes.
#[derive(Debug)]
enum Target {
    /// A command that changes nothing (a read, or a repair that checks before it writes).
    Read,
    /// A read of `key`, which should hold `expected`.
    ReadOf(String, &'static str),
    /// A script that may have written, whose first key holds `expected`.
    Script(String, &'static str),
    /// `INCR` of the counter `key`: a value that is no integer is a decode error.
    Counter(String),
}

/// A failed command, classified once where its reply was read, with what it was doing;
/// becomes the core [`Error`] by `From`, without any password of the repository's URLs.
#[derive(Debug)]
pub(crate) struct RedisFailure {
    error: FredError,
    said: Said,
    context: String,
    target: Target,
    secrets: Vec<RedisUrl>,
}

impl RedisFailure {
    /// `error`, whose messages must not show the passwords of `secrets`.
    pub(crate) fn new(error: FredError, secrets: &[&RedisUrl]) -> Self {
        RedisFailure {
            said: Said::of(&error),
            error,
            context: String::new(),
            target: Target::Read,
            secrets: secrets.iter().map(|url| (*url).clone()).collect(),
        }
    }

    /// A command that changes nothing, doing `context` (`reading task:1`).
    pub(crate) fn reading(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self.target = Target::Read;
        self
    }

    /// A read of `key`, which should hold `expected`: `WRONGTYPE` is [`Error::WrongType`].
    pub(crate) fn reading_key(mut self, key: &str, expected: &'static str) -> Self {
        self.context = format!("reading {key}");
        self.target = Target::ReadOf(key.to_owned(), expected);
        self
    }

    /// A script that may have written (a mutation or a repair), whose first key `first`
    /// holds `expected`: the typed error it raised, [`Error::WrongType`] of `first` for a
    /// bare `WRONGTYPE`, else a refusal or, for a timeout or a broken connection,
    /// [`BackendKind::ReplyLost`] (the script may have run), with `context`.
    pub(crate) fn scripting(
        mut self,
        (first, expected): (&str, &'static str),
        context: impl Into<String>,
    ) -> Self {
        self.context = context.into();
        self.target = Target::Script(first.to_owned(), expected);
        self
    }

    /// `INCR` of the counter `key`, doing `context`.
    pub(crate) fn counting(mut self, key: &str, context: impl Into<String>) -> Self {
        self.context = context.into();
        self.target = Target::Counter(key.to_owned());
        self
    }

    /// What the reply said.
    pub(crate) fn said(&self) -> &Said {
        &self.said
    }

    fn mutation(&self) -> bool {
        matches!(self.target, Target::Script(..) | Target::Counter(_))
    }

    fn scrubbed(&self, message: &str) -> String {
        let urls: Vec<&RedisUrl> = self.secrets.iter().collect();
        scrub(message, &urls)
    }
}

impl From<RedisFailure> for Error {
    fn from(failure: RedisFailure) -> Error {
        match (&failure.said, &failure.target) {
            (Said::Typed(typed), _) => return typed.to_error(),
            (Said::WrongType, Target::ReadOf(key, expected) | Target::Script(key, expected)) => {
                return Error::WrongType {
                    key: key.clone(),
                    expected,
                }
            }
            (Said::WrongType | Said::NotAnInteger, Target::Counter(key)) => {
                return Error::decode(key.clone(), failure.error.details().to_owned())
            }
            (Said::Refused(reason, words), _) => {
                return Error::Refused {
                    reason: *reason,
                    message: failure.scrubbed(&format!("{}: {words}", failure.context)),
                }
            }
            _ => {}
        }
        Error::Backend {
            kind: backend_kind(&failure.said, failure.error.kind(), failure.mutation()),
            message: failure.scrubbed(&format!(
                "{}: {}",
                failure.context,
                describe(&failure.error)
            )),
            source: Some(Box::new(failure.error)),
        }
    }
}

impl Typed {
    fn to_error(&self) -> Error {
        let key = self.key.clone();
        let detail = self.detail.as_str();
        match self.kind {
            TypedKind::WrongType => Error::WrongType {
                key,
                expected: match detail {
                    "hash" => "hash",
                    "set" => "set",
                    _ => "string",
                },
            },
            TypedKind::Invalid => Error::InvalidInput {
                field: match key.as_str() {
                    "ttl" => "ttl",
                    "jobs field" => "jobs field",
                    _ => "script argument",
                },
                value: String::new(),
                reason: detail.to_owned(),
            },
            TypedKind::Decode => Error::Decode {
                key,
                reason: detail.to_owned(),
            },
        }
    }
}

/// The typed error a script raised, wherever in the message Redis put it.
fn typed(details: &str) -> Option<Typed> {
    let kinds = [
        ("TSWRONGTYPE", TypedKind::WrongType),
        ("TSDECODE", TypedKind::Decode),
        ("TSINVALID", TypedKind::Invalid),
    ];
    for (name, kind) in kinds {
        let Some(start) = details.find(&format!("{name}\x1f")) else {
            continue;
        };
        let mut fields = details[start + name.len() + 1..].split('\x1f');
        let key = fields.next()?.to_owned();
        let detail = fields.next().unwrap_or_default().to_owned();
        return Some(Typed { kind, key, detail });
    }
    None
}

/// The refusal that a server's error reply names, with the server's words from its code on
/// (without the ` script: …` that Redis 7 appends). The code opens a command's own reply, and
/// a script's on Redis 7 (`OOM command not allowed … script: …`); Redis 6.2 wraps an error
/// raised inside a script (`Error running script (call to f_…): @user_script:12:
/// @user_script: 12: -OOM command not allowed …`), so a code is also found as a word after a
/// space or a `-`.
fn refusal(details: &str) -> Option<(Refusal, &str)> {
    let starts = std::iter::once(0).chain(
        details
            .char_indices()
            .filter(|(_, c)| *c == ' ' || *c == '-')
            .map(|(i, _)| i + 1),
    );
    for start in starts {
        let rest = &details[start..];
        let word = rest.split(' ').next().unwrap_or_default();
        if let Some(refusal) = Refusal::from_code(word) {
            let words = rest.split(" script: ").next().unwrap_or(rest);
            return Some((refusal, words.trim_end()));
        }
    }
    None
}

/// [`Error::Refused`] for an error that is a refusal, with the context and without any
/// password of `urls`.
pub(crate) fn refused(e: &FredError, context: &str, urls: &[&RedisUrl]) -> Option<Error> {
    match Said::of(e) {
        Said::Refused(reason, words) => Some(Error::Refused {
            reason,
            message: scrub(&format!("{context}: {words}"), urls),
        }),
        _ => None,
    }
}

/// What kind of failure a command's error is. A mutation is handed to fred only on a
/// connected client, so for a mutation every timeout or broken connection may have come after
/// the write: [`BackendKind::ReplyLost`]. (fred may still queue it, if the connection drops
/// just then, and write it after a reconnection.)
pub(crate) fn kind_of(e: &FredError, mutation: bool) -> BackendKind {
    backend_kind(&Said::of(e), e.kind(), mutation)
}

fn backend_kind(said: &Said, kind: &ErrorKind, mutation: bool) -> BackendKind {
    match (said, kind) {
        (Said::NotSent, _) => BackendKind::Disconnected,
        (Said::Auth, _) | (_, ErrorKind::Auth) => BackendKind::Auth,
        (_, ErrorKind::Timeout) if mutation => BackendKind::ReplyLost { timed_out: true },
        (_, ErrorKind::IO | ErrorKind::Canceled) if mutation => {
            BackendKind::ReplyLost { timed_out: false }
        }
        (_, ErrorKind::Timeout) => BackendKind::Timeout,
        (_, ErrorKind::IO | ErrorKind::Canceled) => BackendKind::Disconnected,
        _ => BackendKind::Other,
    }
}

/// What a person needs to read of `e`.
pub(crate) fn describe(e: &FredError) -> String {
    // fred shows an io::Error with its Debug form; its message is what a person needs.
    if let Some(start) = e.details().find("message: \"") {
        let rest = &e.details()[start + 10..];
        if let Some(end) = rest.find('"') {
            return rest[..end].to_owned();
        }
    }
    match e.kind() {
        ErrorKind::Timeout => format!("timed out ({})", e.details()),
        ErrorKind::Auth => format!("authentication failed ({})", e.details()),
        _ => e.details().to_owned(),
    }
}

/// Removes any password of `urls` that a message might carry: the password of every URL in
/// it, whatever its length, and the passwords of `urls` wherever else they appear, when they
/// are long enough (3 bytes) not to mask ordinary words.
pub(crate) fn scrub(message: &str, urls: &[&RedisUrl]) -> String {
    let mut message = crate::redact::mask_url_passwords(message);
    for url in urls {
        if let Ok(parsed) = url::Url::parse(url.expose()) {
            if let Some(password) = parsed.password().filter(|p| p.len() >= 3) {
                message = message.replace(password, "***");
                if let Ok(decoded) = urlencoding_decode(password) {
                    message = message.replace(&decoded, "***");
                }
            }
        }
    }
    message
}

fn urlencoding_decode(text: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_script_error(details: &str) -> Option<Error> {
        typed(details).map(|typed| typed.to_error())
    }

    #[test]
    fn script_errors_are_typed_whatever_redis_wraps_around_them() {
        let redis7 = "TSDECODE\x1ftask:1\x1fnot a JSON object\x1f script: 9a, on @user_script:12.";
        let redis62 = "Error running script (call to f_9a): @user_script:12: \
                       TSWRONGTYPE\x1findex:user:a b\x1fset\x1f";
        assert!(matches!(
            typed_script_error(redis7),
            Some(Error::Decode { ref key, ref reason }) if key == "task:1" && reason == "not a JSON object"
        ));
        assert!(matches!(
            typed_script_error(redis62),
            Some(Error::WrongType { ref key, expected: "set" }) if key == "index:user:a b"
        ));
        assert!(typed_script_error("ERR something else").is_none());
    }

    #[test]
    fn failures_are_classified_by_what_the_command_may_have_done() {
        let e = |kind, details: &str| FredError::new(kind, details.to_owned());
        let timeout = e(ErrorKind::Timeout, "Request timed out.");
        let closed = e(ErrorKind::IO, "Connection closed.");
        assert_eq!(kind_of(&timeout, false), BackendKind::Timeout);
        assert_eq!(
            kind_of(&timeout, true),
            BackendKind::ReplyLost { timed_out: true }
        );
        assert_eq!(kind_of(&closed, false), BackendKind::Disconnected);
        assert_eq!(
            kind_of(&closed, true),
            BackendKind::ReplyLost { timed_out: false }
        );
        // Never handed to the client: not sent, whatever the command.
        let not_sent = e(ErrorKind::Canceled, NOT_SENT);
        assert_eq!(kind_of(&not_sent, true), BackendKind::Disconnected);
        for details in [
            "NOAUTH Authentication required.",
            "NOPERM this user has no permissions",
        ] {
            assert_eq!(
                kind_of(&e(ErrorKind::Unknown, details), true),
                BackendKind::Auth
            );
        }
        assert_eq!(
            kind_of(&e(ErrorKind::Protocol, "bad frame"), true),
            BackendKind::Other
        );
    }

    #[test]
    fn a_failure_becomes_the_error_of_what_the_command_was() {
        let wrong = || {
            RedisFailure::new(
                FredError::new(ErrorKind::Unknown, "WRONGTYPE Operation against a key"),
                &[],
            )
        };
        assert!(matches!(
            Error::from(wrong().reading_key("task:1", "string")),
            Error::WrongType { ref key, expected: "string" } if key == "task:1"
        ));
        assert!(matches!(
            Error::from(wrong().counting("task:id:sequence", "taking the next task id")),
            Error::Decode { ref key, .. } if key == "task:id:sequence"
        ));
        assert!(matches!(
            Error::from(wrong().reading("scanning")),
            Error::Backend {
                kind: BackendKind::Other,
                ..
            }
        ));
        let url = RedisUrl::parse("redis://:hunter22@h/0").unwrap();
        let oom = FredError::new(
            ErrorKind::Unknown,
            "OOM command not allowed (hunter22). script: 9a",
        );
        match Error::from(
            RedisFailure::new(oom, &[&url]).scripting(("task:1", "string"), "updating task \"1\""),
        ) {
            Error::Refused { reason, message } => {
                assert_eq!(reason, Refusal::OutOfMemory);
                assert_eq!(
                    message,
                    "updating task \"1\": OOM command not allowed (***)."
                );
            }
            other => panic!("{other:?}"),
        }
        let closed = FredError::new(ErrorKind::IO, "Connection closed.");
        assert!(matches!(
            Error::from(RedisFailure::new(closed, &[]).scripting(("task:1", "string"), "x")),
            Error::Backend {
                kind: BackendKind::ReplyLost { timed_out: false },
                ..
            }
        ));
    }

    #[test]
    fn protocol_answers_are_told_apart_from_refusals() {
        let said =
            |details: &str| Said::of(&FredError::new(ErrorKind::Unknown, details.to_owned()));
        assert_eq!(said("NOSCRIPT No matching script."), Said::NoScript);
        assert_eq!(said("ERR Function not found"), Said::FunctionMissing);
        assert_eq!(
            said("ERR unknown command 'FCALL', with args beginning with:"),
            Said::UnknownCommand
        );
        assert_eq!(said("TRYAGAIN Multiple keys request"), Said::Redirected);
        assert_eq!(said("CLUSTERDOWN The cluster is down"), Said::Redirected);
        assert_eq!(
            said("ERR value is not an integer or out of range"),
            Said::NotAnInteger
        );
    }

    #[test]
    fn short_passwords_are_scrubbed_without_mangling_the_message() {
        let url = RedisUrl::parse("redis://worker:ab@127.0.0.1:1/0").unwrap();
        let message = "cannot connect to redis://worker:ab@127.0.0.1:1/0: a tab about ab";
        assert_eq!(
            scrub(message, &[&url]),
            "cannot connect to redis://worker:***@127.0.0.1:1/0: a tab about ab"
        );
        let long = RedisUrl::parse("redis://:hunter22@h/0").unwrap();
        assert_eq!(scrub("auth hunter22 failed", &[&long]), "auth *** failed");
    }

    #[test]
    fn refusals_are_found_wherever_redis_puts_their_code() {
        let cases = [
            // A command's own reply.
            ("LOADING Redis is loading the dataset in memory", Refusal::Loading),
            ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", Refusal::BusyScript),
            ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", Refusal::PrimaryDown),
            // Raised inside a script, Redis 7.
            ("OOM command not allowed when used memory > 'maxmemory'. script: 9a, on @user_script:486.", Refusal::OutOfMemory),
            ("READONLY You can't write against a read only replica. script: 9a, on @user_script:486.", Refusal::ReadOnlyReplica),
            // Raised inside a script, Redis 6.2.
            ("ERR Error running script (call to f_9a): @user_script:247: @user_script: 247: -NOREPLICAS Not enough good replicas to write.", Refusal::NotEnoughReplicas),
            ("Error running script (call to f_9a): @user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.", Refusal::OutOfMemory),
        ];
        for (details, want) in cases {
            let (found, words) = refusal(details).unwrap_or_else(|| panic!("{details}"));
            assert_eq!(found, want, "{details}");
            assert!(words.starts_with(want.code()), "{words}");
            assert!(!words.contains("script: 9a"), "{words}");
        }
        for other in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR value is not an integer or out of range",
            "BUSYKEY Target key name already exists.",
            "NOSCRIPT No matching script. Please use EVAL.",
            "ERR Error running script (call to f_9a): @user_script:1: TSDECODE\x1ftask:1\x1fOOM\x1f",
        ] {
            assert!(refusal(other).is_none(), "{other}");
            let said = Said::of(&FredError::new(ErrorKind::Unknown, other));
            assert!(!matches!(said, Said::Refused(..)), "{other}");
        }
    }
}
