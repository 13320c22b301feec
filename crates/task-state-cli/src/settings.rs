//! Connection settings: the `DMS_*` variables, overridden by the global flags.

use task_state_core::Error;
use task_state_redis::{
    RedisRepositorySettings, RedisRepositorySettingsBuilder, RedisUrl, READ_URL_VAR, WRITE_URL_VAR,
};

use crate::cli::GlobalArgs;
use crate::failure::Failure;

/// One short-lived command needs one connection to each server, not a pool.
const POOL_SIZE: usize = 1;

/// The settings for this run.
///
/// # Errors
/// A [`Failure`] with the configuration message (which never contains a password).
pub(crate) fn build(global: &GlobalArgs) -> Result<RedisRepositorySettings, Failure> {
    let mut builder = RedisRepositorySettingsBuilder::from_env().with_pool_size(POOL_SIZE);
    if let Some(url) = &global.write_url {
        builder = builder.with_write_url(flag_url("--write-url", url)?);
    }
    if let Some(url) = &global.read_url {
        builder = builder.with_read_url(flag_url("--read-url", url)?);
    }
    if let Some(ttl) = global.ttl {
        builder = builder.with_ttl_seconds(ttl);
    }
    if let Some(zone) = &global.timezone {
        builder = builder.with_timezone(zone);
    }
    if let Some(field) = global.jobs_field {
        builder = builder.with_jobs_field(field);
    }
    if let Some(timeout) = global.timeout {
        builder = builder
            .with_connect_timeout(timeout)
            .with_command_timeout(timeout);
    }
    builder.build().map_err(|e| match e {
        Error::Config(message) if message == format!("{WRITE_URL_VAR} is not set") => {
            Failure::from(Error::Config(format!(
                "no Redis URL: set {WRITE_URL_VAR} or pass --write-url redis://host:port"
            )))
        }
        other => other.into(),
    })
}

/// A URL given as a flag, checked here so that its error names the flag and not the
/// variable that the flag overrides.
fn flag_url<'a>(flag: &str, url: &'a str) -> Result<&'a str, Failure> {
    match RedisUrl::parse(url) {
        Ok(_) => Ok(url),
        Err(Error::Config(message)) => {
            Err(Failure::from(Error::Config(format!("{flag}: {message}"))))
        }
        Err(other) => Err(other.into()),
    }
}

/// The passwords in the configured URLs, to mask in any message as a last resort.
pub(crate) fn secrets(global: &GlobalArgs) -> Vec<String> {
    let env = |name: &str| std::env::var(name).ok();
    [
        global.write_url.clone(),
        global.read_url.clone(),
        env(WRITE_URL_VAR),
        env(READ_URL_VAR),
    ]
    .into_iter()
    .flatten()
    .filter_map(|url| password_of(&url))
    .collect()
}

/// The password part of `scheme://user:password@host...`, when it is long enough to mask
/// without masking ordinary words.
fn password_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (password.len() >= 3).then(|| password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_urls() {
        assert_eq!(
            password_of("redis://user:s3cret@host:6379/0").as_deref(),
            Some("s3cret")
        );
        assert_eq!(password_of("redis://:p@ss@host").as_deref(), Some("p@ss"));
        assert_eq!(password_of("redis://host:6379/0"), None);
        assert_eq!(password_of("redis://user@host"), None);
    }
}
