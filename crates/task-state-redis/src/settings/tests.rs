//! Tests of the settings: variables read, values checked, passwords masked.

use super::*;
use task_state_core::Error;

fn from(vars: &[(&str, &str)]) -> Result<RedisRepositorySettings> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    RedisRepositorySettingsBuilder::from_lookup(|name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .build()
}

fn config_message(result: Result<RedisRepositorySettings>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn defaults_follow_the_python_package() {
    let s = from(&[(WRITE_URL_VAR, "redis://localhost:6379/3")]).unwrap();
    assert_eq!(s.write_path(), WritePath::Auto);
    assert_eq!(s.read_url(), s.write_url());
    assert_eq!(s.ttl_seconds(), 7_776_000);
    assert_eq!(s.zone().name(), "Asia/Seoul");
    assert_eq!(s.write_url().database(), 3);
}

#[test]
fn provider_settings_default_and_parse() {
    let url = (WRITE_URL_VAR, "redis://localhost");
    let s = from(&[url]).unwrap();
    assert_eq!(s.reconcile_interval(), Duration::from_secs(300));
    assert!(s.require_keyevent_notifications());
    let s = from(&[
        url,
        (RECONCILE_INTERVAL_VAR, "0"),
        (REQUIRE_NOTIFICATIONS_VAR, "False"),
    ])
    .unwrap();
    assert_eq!(s.reconcile_interval(), Duration::ZERO);
    assert!(!s.require_keyevent_notifications());
    let s = from(&[
        url,
        (RECONCILE_INTERVAL_VAR, " 60 "),
        (REQUIRE_NOTIFICATIONS_VAR, "1"),
    ])
    .unwrap();
    assert_eq!(s.reconcile_interval(), Duration::from_secs(60));
    assert!(s.require_keyevent_notifications());
    for bad in ["-1", "ten", "1.5"] {
        let message = config_message(from(&[url, (RECONCILE_INTERVAL_VAR, bad)]));
        assert!(message.contains(RECONCILE_INTERVAL_VAR), "{bad}: {message}");
    }
    let message = config_message(from(&[url, (REQUIRE_NOTIFICATIONS_VAR, "maybe")]));
    assert!(message.contains(REQUIRE_NOTIFICATIONS_VAR), "{message}");
    let built = RedisRepositorySettings::builder()
        .with_write_url("redis://localhost")
        .with_reconcile_interval(Duration::from_secs(5))
        .with_require_keyevent_notifications(false)
        .build()
        .unwrap();
    assert_eq!(built.reconcile_interval(), Duration::from_secs(5));
    assert!(!built.require_keyevent_notifications());
}

#[test]
fn missing_write_url_names_the_variable() {
    assert_eq!(config_message(from(&[])), "DMS_REDIS_WRITE_URL is required");
    assert!(config_message(from(&[(WRITE_URL_VAR, "  ")])).contains(WRITE_URL_VAR));
}

#[test]
fn bad_values_are_config_errors_naming_the_variable() {
    let url = (WRITE_URL_VAR, "redis://localhost");
    assert!(config_message(from(&[url, (TTL_VAR, "0")])).contains(TTL_VAR));
    assert!(config_message(from(&[url, (TTL_VAR, "-5")])).contains(TTL_VAR));
    assert!(config_message(from(&[url, (TTL_VAR, "ten")])).contains(TTL_VAR));
    assert!(config_message(from(&[url, (TIMEZONE_VAR, "Mars/Base")])).contains(TIMEZONE_VAR));
    assert!(config_message(from(&[url, (READ_URL_VAR, "http://x")])).contains(READ_URL_VAR));
    for bad in [
        "localhost:6379",
        "redis://",
        "redis://host/abc",
        "ftp://host",
        "::",
    ] {
        assert!(
            config_message(from(&[(WRITE_URL_VAR, bad)])).contains(WRITE_URL_VAR),
            "{bad}"
        );
    }
}

#[test]
fn a_url_without_a_scheme_gets_a_hint() {
    for bare in [
        "localhost:6379",
        "127.0.0.1:6379",
        "user:hunter2@cache:6379/0",
    ] {
        let message = config_message(from(&[(WRITE_URL_VAR, bare)]));
        assert!(message.contains("redis://host:port"), "{bare}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn passwords_never_show() {
    let s = from(&[
        (WRITE_URL_VAR, "redis://user:hunter2@primary:6379/0"),
        (READ_URL_VAR, "redis://:hunter3@replica:6379/0"),
    ])
    .unwrap();
    let shown = format!("{s:?} {} {}", s.write_url(), s.read_url());
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(shown.contains("user:***@primary"));
    let builder = RedisRepositorySettings::builder().with_write_url("redis://:hunter2@h/0");
    assert!(!format!("{builder:?}").contains("hunter2"));
    let err = from(&[(WRITE_URL_VAR, "redis://u:hunter2@host/notanumber")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let url = RedisUrl::parse(
        "redis-sentinel://:hunter5@h:26379/0?sentinelServiceName=m&sentinelPassword=hunter4",
    )
    .unwrap();
    assert!(!url.to_string().contains("hunter"), "{url}");
    assert!(url.to_string().contains("sentinelPassword=***"), "{url}");
}

#[test]
fn cluster_urls_are_checked_and_masked() {
    let url =
        RedisUrl::parse("redis-cluster://w:hunter7@n1:7000?node=n2:7001&node=n3:7002").unwrap();
    assert!(url.is_cluster() && !url.is_sentinel() && !url.is_tls());
    assert_eq!(url.database(), 0);
    assert!(!url.to_string().contains("hunter7") && url.to_string().contains("w:***@"));
    assert!(!format!("{url:?}").contains("hunter7"));
    assert!(!RedisUrl::parse("redis://n1:7000").unwrap().is_cluster());
    for (bad, says) in [
        ("redis-cluster://:hunter7@n1", "port"),
        ("redis-cluster://:hunter7@n1:7000/3", "only database 0"),
    ] {
        let message = RedisUrl::parse(bad).unwrap_err().to_string();
        assert!(message.contains(says), "{bad}: {message}");
        assert!(!message.contains("hunter7"), "{message}");
    }
    #[cfg(feature = "tls")]
    assert!(RedisUrl::parse("rediss-cluster://n1:7000")
        .unwrap()
        .is_tls());
    let mixed = RedisRepositorySettings::builder()
        .with_write_url("redis-cluster://n1:7000")
        .with_read_url("redis://n1:7000/0")
        .build()
        .unwrap_err()
        .to_string();
    assert!(mixed.contains("both be redis-cluster://"), "{mixed}");
    let both = RedisRepositorySettings::builder()
        .with_write_url("redis-cluster://n1:7000")
        .build()
        .unwrap();
    assert!(both.read_url().is_cluster());
}

#[test]
fn sentinel_urls_name_the_service() {
    let url = RedisUrl::parse(
        "redis-sentinel://s1:26379/2?sentinelServiceName=mymaster&node=s2:26379&node=s3:26379",
    )
    .unwrap();
    assert!(url.is_sentinel());
    assert!(!url.is_tls());
    assert_eq!(url.database(), 2);
    assert!(!RedisUrl::parse("redis://h:6379/0").unwrap().is_sentinel());
    for bad in [
        "redis-sentinel://s1:26379/0",
        "redis-sentinel://s1:26379/0?node=s2:26379",
        "redis-sentinel://s1:26379/0?sentinelServiceName=",
    ] {
        let message = config_message(from(&[(WRITE_URL_VAR, bad)]));
        assert!(message.contains("sentinelServiceName"), "{bad}: {message}");
    }
    let tls = RedisUrl::parse("rediss-sentinel://s1/0?sentinelServiceName=m");
    if cfg!(feature = "tls") {
        let tls = tls.unwrap();
        assert!(tls.is_tls() && tls.is_sentinel());
    } else {
        assert!(matches!(tls, Err(Error::Config(_))));
    }
}

#[test]
fn tls_urls_follow_the_feature() {
    let result = RedisUrl::parse("rediss://host:6380/0");
    if cfg!(feature = "tls") {
        assert!(result.unwrap().is_tls());
    } else {
        assert!(matches!(result, Err(Error::Config(_))));
    }
}

#[test]
fn the_write_path_is_read_by_name() {
    let url = (WRITE_URL_VAR, "redis://localhost:6379");
    for path in [
        WritePath::Auto,
        WritePath::Script,
        WritePath::Watch,
        WritePath::IfEq,
    ] {
        let upper = path.as_str().to_uppercase();
        let s = from(&[url, (WRITE_PATH_VAR, &upper)]).unwrap();
        assert_eq!(s.write_path(), path);
    }
    let message = config_message(from(&[url, (WRITE_PATH_VAR, "lua")]));
    assert!(message.contains(WRITE_PATH_VAR), "{message}");
}
