//! Why a command failed, and the exit code that tells a script so.

use std::process::ExitCode;

use task_state_core::Error;

use crate::output::escape_controls;

/// The exit codes, an interface that scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// Stopped early without fault, such as when the reader of stdout went away.
    Success = 0,
    /// Anything else: Redis unreachable, a bad record, bad configuration.
    Error = 1,
    /// The command line (or a value in it) was wrong. clap exits with 2 by itself too.
    Usage = 2,
    /// The task does not exist.
    NotFound = 3,
    /// The task is not in a status that allows the change.
    Conflict = 4,
    /// The server refused the command for a reason of its own state (out of memory, a
    /// read-only replica, not enough replicas, a busy script, loading, primary down); nothing
    /// was written.
    Refused = 5,
    /// `fsck` could not do its check (Redis unreachable, a scan that failed): whether the
    /// store is consistent is not known. (Exit 1 from `fsck` means "inconsistent".)
    Unchecked = 6,
    /// A change was sent and its reply never came (a timeout, a dropped connection): it may
    /// or may not have been applied. Read the task back before doing it again.
    ReplyLost = 7,
    /// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

/// A failed command: the exit code and the one line to print on stderr.
#[derive(Debug)]
pub(crate) struct Failure {
    exit: Exit,
    message: Option<String>,
}

impl Failure {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: Some(message.into()),
        }
    }

    /// A stop that needs no message.
    pub(crate) fn silent(exit: Exit) -> Self {
        Failure {
            exit,
            message: None,
        }
    }

    pub(crate) fn not_found(task_id: &str) -> Self {
        Failure::from(Error::NotFound {
            task_id: task_id.to_owned(),
        })
    }

    /// The same failure with another exit code.
    pub(crate) fn with_exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }

    #[cfg(test)]
    pub(crate) fn exit(&self) -> Exit {
        self.exit
    }

    /// Prints the message as one line on stderr, with any of `secrets` masked, and gives the
    /// exit code.
    pub(crate) fn report(&self, secrets: &[String]) -> ExitCode {
        if let Some(message) = &self.message {
            eprintln!("task-state: {}", one_line(message, secrets));
        }
        ExitCode::from(self.exit as u8)
    }
}

/// Newlines would break "one line on stderr"; passwords must never show. The repository's
/// messages are masked already: this is the second line of defence (the password of any URL
/// in the message, whatever its length, and the configured passwords anywhere). A message
/// may quote stored text (a key, an id): its other control characters are escaped, as on
/// stdout.
fn one_line(message: &str, secrets: &[String]) -> String {
    let mut line = task_state_redis::mask_url_passwords(&message.replace(['\r', '\n'], " "));
    for secret in secrets {
        line = line.replace(secret.as_str(), "***");
    }
    escape_controls(&line).into_owned()
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let exit = match &e {
            Error::NotFound { .. } => Exit::NotFound,
            Error::Conflict { .. } | Error::AlreadyExists { .. } => Exit::Conflict,
            Error::InvalidInput { .. } => Exit::Usage,
            Error::Refused { .. } => Exit::Refused,
            _ if e.is_reply_lost() => Exit::ReplyLost,
            _ => Exit::Error,
        };
        if e.is_reply_lost() {
            return Failure::new(
                exit,
                format!("{e} (it may have been applied: check with `task-state get` before repeating it)"),
            );
        }
        Failure::new(exit, e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        // A closed pipe (`task-state list | head`) is the reader's choice, not a failure.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure::silent(Exit::Success);
        }
        Failure::new(Exit::Error, format!("cannot write the output: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use task_state_core::TaskStatus;

    #[test]
    fn errors_map_to_their_exit_codes() {
        let conflict = Failure::from(Error::Conflict {
            task_id: "7".into(),
            current: TaskStatus::Running,
            expected: vec![TaskStatus::Pending],
        });
        assert_eq!(conflict.exit(), Exit::Conflict);
        assert!(conflict.message.as_deref().unwrap().contains("running"));
        assert_eq!(Failure::not_found("7").exit(), Exit::NotFound);
        assert_eq!(
            Failure::from(Error::backend("connection refused")).exit(),
            Exit::Error
        );
        let lost = Failure::from(Error::backend_of(
            task_state_core::BackendKind::ReplyLost { timed_out: true },
            "updating task \"7\": timed out",
        ));
        assert_eq!(lost.exit(), Exit::ReplyLost);
        assert!(lost
            .message
            .as_deref()
            .unwrap()
            .contains("may have been applied"));
        let refused = Failure::from(Error::Refused {
            reason: task_state_core::Refusal::OutOfMemory,
            message: "updating task \"7\": OOM command not allowed".into(),
        });
        assert_eq!(refused.exit(), Exit::Refused);
        assert_eq!(
            refused.message.as_deref(),
            Some("the server refused: it is out of memory (updating task \"7\": OOM command not allowed)")
        );
    }

    #[test]
    fn messages_become_one_line_without_secrets() {
        let line = one_line(
            "cannot connect\nto redis://:hunter22@x",
            &["hunter22".into()],
        );
        assert_eq!(line, "cannot connect to redis://:***@x");
        // Too short to mask by its text, masked by its place in the URL.
        let line = one_line("cannot connect to redis://u:p@x: a pipe", &[]);
        assert_eq!(line, "cannot connect to redis://u:***@x: a pipe");
    }
}
