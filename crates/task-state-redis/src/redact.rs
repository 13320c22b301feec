//! Keeping passwords out of messages.

/// `text` with the password of every URL in it (`scheme://user:password@host…`) replaced by
/// `***`, whatever its length; everything else is left as it is.
///
/// Messages should never carry a raw URL in the first place (a [`crate::RedisUrl`] masks
/// its password when shown); this is the safety net for what a client library puts in an
/// error. A password is found by its place in a URL, not by its text, so a short one (`a`)
/// is masked without touching the same letters elsewhere in the message.
///
/// ```
/// use task_state_redis::mask_url_passwords;
/// assert_eq!(
///     mask_url_passwords("cannot connect to redis://worker:a@db:6379/0: a timeout"),
///     "cannot connect to redis://worker:***@db:6379/0: a timeout"
/// );
/// assert_eq!(mask_url_passwords("redis://:p@ss@db"), "redis://:***@db");
/// assert_eq!(mask_url_passwords("redis://db:6379/0"), "redis://db:6379/0");
/// ```
pub fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        // The authority ends where the path, query or fragment begins, or the URL does.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        // The last `@` ends the userinfo: an unencoded `@` may be part of the password.
        match authority.rfind('@').map(|at| authority.split_at(at)) {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_password_in_a_url_is_masked_and_nothing_else() {
        let cases = [
            (
                "redis://:ab@127.0.0.1:1/0: a tab",
                "redis://:***@127.0.0.1:1/0: a tab",
            ),
            (
                "rediss://u:x@h and redis://v:yy@k/2",
                "rediss://u:***@h and redis://v:***@k/2",
            ),
            ("\"redis://:s3cret@h:1\"", "\"redis://:***@h:1\""),
            ("redis://user@h", "redis://user@h"),
            (
                "redis-sentinel://:pw@s1:26379/0?sentinelServiceName=m",
                "redis-sentinel://:***@s1:26379/0?sentinelServiceName=m",
            ),
            ("no url here: a", "no url here: a"),
            ("ends with ://", "ends with ://"),
        ];
        for (text, want) in cases {
            assert_eq!(mask_url_passwords(text), want, "{text}");
        }
    }
}
