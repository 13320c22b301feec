//! What the console is allowed to do, and the operators' tokens.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;
use task_state_core::{Error, Result};

/// The variable that holds the operators' tokens.
pub const TOKEN_VAR: &str = "TASK_STATE_CONSOLE_TOKEN";

/// The shortest secret a token may have, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// How the console runs.
///
/// ```
/// use std::time::Duration;
/// use task_state_console::{ConsoleConfig, OperatorToken};
///
/// let mut config = ConsoleConfig::default();
/// config.allow_writes = true;
/// assert!(config.validate().is_err(), "writes need a token");
/// config.tokens = OperatorToken::parse_list("alice:0123456789abcdef").unwrap();
/// config.metrics_interval = Duration::from_secs(30);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsoleConfig {
    /// Whether the write actions (request cancellation, delete) are offered at all. Off by
    /// default; even when on, an operator must sign in with a token first.
    pub allow_writes: bool,
    /// The tokens that let an operator sign in, from [`TOKEN_VAR`].
    pub tokens: Vec<OperatorToken>,
    /// How often the task counts (the overview and `task_state_tasks`) are recounted.
    pub metrics_interval: Duration,
    /// Tasks on one page of the task list, and services on one page of the overview.
    pub page_size: usize,
    /// Services that `task_state_tasks` names (those with the most tasks) and that the task
    /// list's service field suggests; the tasks of the others are summed under
    /// `service=":other"`, so that the series stay bounded however many services there are.
    pub top_services: usize,
    /// Task list pages with a status filter (which read records until the page is full,
    /// the whole index when few tasks match) or sorted by a column other than the id (which
    /// read every record of the index), and bulk actions, that may run at once; past it the
    /// list answers 503 with `Retry-After`.
    pub max_status_scans: usize,
    /// Live log streams open at once (each task is read by one follower however many
    /// streams show it); past it a stream is answered 503 with `Retry-After`.
    pub max_live_streams: usize,
    /// How often a followed log is read again; with keyspace notifications on, the least
    /// time between two reads (a read follows a write).
    pub live_poll: Duration,
    /// With keyspace notifications on (Redis, not a cluster, `notify-keyspace-events` with
    /// `K` and `$` or `A`), the longest time between two reads of a followed log, in case a
    /// notification was lost (a reconnection).
    pub live_fallback_poll: Duration,
    /// The `Host` header values that the console answers; any other host gets 421, which
    /// stops DNS rebinding from reaching a console on loopback. Empty: any host, which
    /// [`Console::serve`](crate::Console::serve) accepts on a loopback address only, unless
    /// [`ConsoleConfig::allow_any_host`] is set.
    pub allowed_hosts: Vec<String>,
    /// Whether the console may answer any `Host` on an address other machines reach (off:
    /// such a console refuses to start without [`ConsoleConfig::allowed_hosts`]). Any
    /// host means that a page of any site whose name a DNS trick points at this machine
    /// can read the console in its visitors' browsers.
    pub allow_any_host: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            allow_writes: false,
            tokens: Vec::new(),
            metrics_interval: Duration::from_secs(60),
            page_size: 50,
            top_services: 100,
            max_status_scans: 4,
            max_live_streams: 1_000,
            live_poll: Duration::from_millis(500),
            live_fallback_poll: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
            allow_any_host: false,
        }
    }
}

impl ConsoleConfig {
    /// Checks that the settings can work together.
    ///
    /// # Errors
    /// [`Error::Config`] when writes are allowed without any token, or an interval, the page
    /// size, the number of top services, of status scans or of live streams is zero.
    pub fn validate(&self) -> Result<()> {
        if self.allow_writes && self.tokens.is_empty() {
            return Err(Error::Config(format!(
                "writes are allowed but {TOKEN_VAR} holds no token: set it to name:secret"
            )));
        }
        if self.metrics_interval.is_zero()
            || self.live_poll.is_zero()
            || self.live_fallback_poll.is_zero()
        {
            return Err(Error::Config("intervals must be more than zero".to_owned()));
        }
        if [
            self.page_size,
            self.top_services,
            self.max_status_scans,
            self.max_live_streams,
        ]
        .contains(&0)
        {
            return Err(Error::Config(
                "the page size, the number of top services, the status scans and the live \
                 streams at once must be more than zero"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks that a console listening on `listen` does not answer any host where other
    /// machines reach it: on an address that is not loopback (`0.0.0.0` included), either
    /// [`ConsoleConfig::allowed_hosts`] names the hosts to answer or
    /// [`ConsoleConfig::allow_any_host`] says any will do.
    ///
    /// # Errors
    /// [`Error::Config`] naming the address and both ways out.
    ///
    /// ```
    /// use task_state_console::ConsoleConfig;
    /// let mut config = ConsoleConfig::default();
    /// config.validate_listen("127.0.0.1:8080".parse().unwrap()).unwrap();
    /// assert!(config.validate_listen("0.0.0.0:8080".parse().unwrap()).is_err());
    /// config.allowed_hosts = vec!["console.example.org".to_owned()];
    /// config.validate_listen("0.0.0.0:8080".parse().unwrap()).unwrap();
    /// ```
    pub fn validate_listen(&self, listen: SocketAddr) -> Result<()> {
        if listen.ip().is_loopback() || !self.allowed_hosts.is_empty() || self.allow_any_host {
            return Ok(());
        }
        Err(Error::Config(format!(
            "refusing to listen on {listen}, which is not a loopback address, while answering \
             any Host header: a page of any site could read the console through a DNS name \
             pointed at this machine (DNS rebinding); name the hosts to answer with \
             --allowed-host HOST, or accept this with --allow-any-host"
        )))
    }

    /// The operator whose token `presented` is, compared in constant time against every
    /// configured token (all of them are compared, whichever matches).
    pub(crate) fn operator_of(&self, presented: &str) -> Option<String> {
        let mut found = None;
        for token in &self.tokens {
            let matches: bool = token.full.as_bytes().ct_eq(presented.as_bytes()).into();
            if matches && found.is_none() {
                found = Some(token.name.clone());
            }
        }
        found
    }
}

/// One operator's token, written `name:secret`: the name appears in the audit log, the
/// secret never does. Names are 1 to 64 letters, digits, `.`, `_`, `-` or `@`; secrets are
/// at least [`MIN_SECRET_LEN`] bytes without whitespace or commas.
///
/// ```
/// use task_state_console::OperatorToken;
/// let token: OperatorToken = "alice:0123456789abcdef".parse().unwrap();
/// assert_eq!(token.name(), "alice");
/// assert!(!format!("{token:?}").contains("0123456789abcdef"));
/// assert!("alice:short".parse::<OperatorToken>().is_err());
/// ```
#[derive(Clone)]
pub struct OperatorToken {
    name: String,
    full: String,
}

impl OperatorToken {
    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads a list of tokens separated by commas (`alice:…,bob:…`), as
    /// [`TOKEN_VAR`] holds them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and the position of the bad token (never its
    /// secret).
    pub fn parse_list(text: &str) -> Result<Vec<OperatorToken>> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .enumerate()
            .map(|(n, part)| {
                part.parse().map_err(|e| match e {
                    Error::Config(reason) => {
                        Error::Config(format!("{TOKEN_VAR}: token {}: {reason}", n + 1))
                    }
                    other => other,
                })
            })
            .collect()
    }
}

impl std::str::FromStr for OperatorToken {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, secret) = text
            .split_once(':')
            .ok_or_else(|| Error::Config("expected name:secret".to_owned()))?;
        let name_ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if !name_ok {
            return Err(Error::Config(
                "the name must be 1 to 64 letters, digits, '.', '_', '-' or '@'".to_owned(),
            ));
        }
        if secret.len() < MIN_SECRET_LEN || secret.chars().any(|c| c.is_whitespace() || c == ',') {
            return Err(Error::Config(format!(
                "the secret must be at least {MIN_SECRET_LEN} bytes without spaces or commas"
            )));
        }
        Ok(OperatorToken {
            name: name.to_owned(),
            full: text.to_owned(),
        })
    }
}

impl fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorToken")
            .field("name", &self.name)
            .field("secret", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_operator_and_compare_whole() {
        let config = ConsoleConfig {
            tokens: OperatorToken::parse_list(" alice:0123456789abcdef , bob:fedcba9876543210")
                .unwrap(),
            ..ConsoleConfig::default()
        };
        assert_eq!(
            config.operator_of("bob:fedcba9876543210").as_deref(),
            Some("bob")
        );
        assert_eq!(config.operator_of("bob:0123456789abcdef"), None);
        assert_eq!(config.operator_of("alice:0123456789abcde"), None);
        assert_eq!(config.operator_of(""), None);
    }

    #[test]
    fn bad_tokens_are_refused_without_showing_the_secret() {
        for bad in [
            "nocolon",
            ":0123456789abcdef",
            "a b:0123456789abcdef",
            "alice:short",
        ] {
            let e = OperatorToken::parse_list(bad).unwrap_err();
            assert!(
                matches!(&e, Error::Config(m) if m.contains(TOKEN_VAR)),
                "{e}"
            );
        }
        let e =
            OperatorToken::parse_list("ok:0123456789abcdef,bad:secret with space!!").unwrap_err();
        assert!(e.to_string().contains("token 2"), "{e}");
        assert!(!e.to_string().contains("secret with"), "{e}");
    }

    #[test]
    fn writes_need_a_token() {
        let config = ConsoleConfig {
            allow_writes: true,
            ..ConsoleConfig::default()
        };
        assert!(matches!(config.validate(), Err(Error::Config(m)) if m.contains(TOKEN_VAR)));
    }
}
