//! Who may write: sessions opened with an operator's token, and the checks against
//! cross-site requests (the session cookie is `SameSite=Strict`, every write form carries the
//! session's CSRF token, and a request whose `Origin` is not the console's is refused).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "task_state_console_session";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes when a sign-in would pass this.
const MAX_SESSIONS: usize = 1_000;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token's name, for the audit log.
    pub(crate) operator: String,
    /// The value every write form of this session carries.
    pub(crate) csrf: String,
    expires: Instant,
}

/// The open sessions, by the random id that the cookie carries.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the operating system, in hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Opens a session for `operator`; returns its id (the cookie's value).
    pub(crate) fn open(&self, operator: String) -> String {
        let id = random_hex();
        let session = Session {
            operator,
            csrf: random_hex(),
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let mut open = self.lock();
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(id.clone(), session);
        id
    }

    /// The session whose id the request's cookie carries, while it lasts.
    pub(crate) fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE_NAME)?;
        let open = self.lock();
        let session = open.get(&id)?;
        (session.expires > Instant::now()).then(|| session.clone())
    }

    /// Closes the request's session, if any.
    pub(crate) fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE_NAME) {
            self.lock().remove(&id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// The `Set-Cookie` value that opens a session.
pub(crate) fn session_cookie(id: &str) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends it.
pub(crate) fn expired_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Where signing in may lead: `next` when a browser reading it as a `Location` relative to
/// the console stays on the console, else `None`.
///
/// Browsers drop tabs and newlines anywhere in a URL, trim control characters and spaces,
/// and read `\\` as `/` (so `/\t/evil.com` and `/\\evil.com` are `//evil.com`, another
/// host). Rather than follow each of these rules, `next` must be a path of visible ASCII
/// only (no control character, space, backslash or non-ASCII character; a page of the
/// console percent-encodes those), starting with one `/`, and resolving (by the WHATWG URL
/// rules, as browsers do) to this origin. Such a value is always a valid header value.
pub(crate) fn local_path(next: &str) -> Option<&str> {
    let visible = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    let one_slash = next.starts_with('/') && !next.starts_with("//");
    if !(visible && one_slash) {
        return None;
    }
    let base = url::Url::parse("http://console.invalid/").expect("a valid base");
    let resolved = base.join(next).ok()?;
    (resolved.origin() == base.origin()).then_some(next)
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Why a state-changing request is refused as cross-site, or `None` when it may go on.
///
/// A browser sends `Origin` with every POST; it must name the host the request was sent to.
/// Where there is none, `Sec-Fetch-Site` (sent by current browsers) must say `same-origin`.
/// A client that sends neither (a script with `curl`) still needs the session cookie and
/// the form's CSRF token.
pub(crate) fn cross_site(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
        return (!same).then(|| format!("the request comes from another origin ({origin:.80})"));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") | None => None,
        Some(other) => Some(format!("the browser says the request is {other:.40}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_must_be_the_console() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            cross_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")])),
            None
        );
        assert!(cross_site(&headers(&[host, ("origin", "http://evil.example")])).is_some());
        assert!(cross_site(&headers(&[host, ("origin", "null")])).is_some());
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:8080")])).is_some());
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_some());
        assert_eq!(
            cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(cross_site(&headers(&[host])), None);
    }

    #[test]
    fn next_is_a_path_of_the_console_or_nothing() {
        for local in [
            "/",
            "/tasks/1/cancel",
            "/tasks?service=a%20b&after=5",
            "/./x",
            "/%2F/x",
        ] {
            assert_eq!(local_path(local), Some(local), "{local:?}");
        }
        for away in [
            "",
            "//evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r/evil.com",
            " //evil.com",
            "/ /evil.com",
            "\u{0}//evil.com",
            "http://evil.com",
            "https:evil.com",
            "javascript:alert(1)",
            "evil.com",
            "/\u{7f}/evil.com",
            "/é",
        ] {
            assert_eq!(local_path(away), None, "{away:?}");
        }
    }

    proptest::proptest! {
        /// Whatever `next` holds, what is accepted stays on the console when a browser
        /// resolves it, and can be sent as a `Location` header.
        #[test]
        fn an_accepted_next_never_leaves_the_console(
            next in proptest::string::string_regex("[/\\\\\t\n\r .:a-z%0-9@?#\u{0}-\u{1f}\u{7f}\u{80}-\u{ff}]{0,12}").unwrap(),
        ) {
            if let Some(path) = local_path(&next) {
                let base = url::Url::parse("http://console.invalid/").unwrap();
                let resolved = base.join(path).unwrap();
                proptest::prop_assert_eq!(resolved.host_str(), Some("console.invalid"));
                proptest::prop_assert_eq!(resolved.scheme(), "http");
                proptest::prop_assert!(axum::http::HeaderValue::from_str(path).is_ok());
                // The path a browser requests starts the same way: no second slash that
                // a later rule could read as the start of a host.
                proptest::prop_assert!(!resolved.path().starts_with("//"));
            }
        }

        /// Every path of the console that a page links to (one slash, then percent-encoded
        /// text) is accepted.
        #[test]
        fn the_consoles_own_links_are_accepted(segment in "\\PC{0,12}") {
            let link = format!("/tasks/{}/cancel", crate::pages::encode(&segment));
            proptest::prop_assert_eq!(local_path(&link), Some(link.as_str()));
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let sessions = Sessions::default();
        let id = sessions.open("alice".to_owned());
        let with = headers(&[("cookie", &format!("other=1; {COOKIE_NAME}={id}"))]);
        let session = sessions.of(&with).expect("open");
        assert_eq!(session.operator, "alice");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("guess"));
        assert!(sessions
            .of(&headers(&[("cookie", &format!("{COOKIE_NAME}=x{id}"))]))
            .is_none());
        sessions.close(&with);
        assert!(sessions.of(&with).is_none());
    }
}
