//! Time zones, the clock, and timestamps in the form Python's `isoformat()` writes.
//!
//! Zone rules come from [jiff](https://docs.rs/jiff): the system's tz database
//! (`/usr/share/zoneinfo`, which Debian and most images keep current; `TZDIR` names another
//! place). The feature `tzdb-bundle` embeds jiff's copy of the database as the fallback, for
//! systems that have none (distroless or scratch images, Alpine without `tzdata`); without
//! either, only `UTC` is known and a repository configured with another zone fails with
//! [`Error::Config`] saying so. The `task-state` command turns the feature on. `time-tz` 2.x was not chosen
//! because it bundles 2022 data, which gets `America/Mexico_City` wrong from 2023 on (Mexico
//! dropped daylight saving time in October 2022); `time-tz` 3 is still a pre-release. A test
//! checks Mexico City in July 2023 (UTC-06:00).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

use crate::error::{Error, Result};

/// The zone the Python package uses when `DMS_TIMEZONE` is unset.
pub const DEFAULT_TIMEZONE: &str = "Asia/Seoul";

/// The variable that names the time zone of timestamps.
pub const TIMEZONE_VAR: &str = "DMS_TIMEZONE";

/// An IANA time zone, remembered with its name.
///
/// ```
/// use task_state_core::Zone;
/// let zone = Zone::named("Europe/Berlin").unwrap();
/// assert_eq!(zone.name(), "Europe/Berlin");
/// assert!(Zone::named("Mars/Olympus_Mons").is_err());
/// ```
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// Looks up an IANA zone name such as `Asia/Seoul` or `UTC`.
    ///
    /// # Errors
    /// [`Error::Config`] when the name is not in the tz database.
    pub fn named(name: &str) -> Result<Self> {
        let tz = TimeZone::get(name).map_err(|e| {
            // Without a system database (and without the bundled one) every name but UTC
            // fails: say how to get one, not only that the name is unknown.
            let hint = if jiff::tz::db().is_definitively_empty() {
                " (no tz database found: install the system's tzdata, set TZDIR, or enable \
                 the `tzdb-bundle` feature)"
            } else {
                ""
            };
            Error::Config(format!("unknown time zone {name:?}: {e}{hint}"))
        })?;
        Ok(Zone {
            name: name.to_owned(),
            tz,
        })
    }

    /// The zone that `DMS_TIMEZONE` names, as the Python package's `now()` uses it, or
    /// `Asia/Seoul` when the variable is unset or names no zone (a repository configured from
    /// the environment reports such a name as an error).
    ///
    /// ```
    /// use task_state_core::Zone;
    /// let zone = Zone::configured();
    /// assert!(!zone.name().is_empty());
    /// ```
    pub fn configured() -> Self {
        std::env::var(TIMEZONE_VAR)
            .ok()
            .and_then(|name| Zone::named(name.trim()).ok())
            .unwrap_or_default()
    }

    /// UTC.
    pub fn utc() -> Self {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The IANA name the zone was made from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }
}

impl Default for Zone {
    /// `Asia/Seoul`, the Python package's default (UTC if the tz database lacks it).
    fn default() -> Self {
        Zone::named(DEFAULT_TIMEZONE).unwrap_or_else(|_| Zone::utc())
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.name).finish()
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Where "now" comes from. Tests swap in a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is set or advanced. Clones share the same time.
///
/// ```
/// use task_state_core::{Clock, ManualClock};
/// let clock = ManualClock::new("2025-11-17T01:00:16Z".parse().unwrap());
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(clock.now().to_string(), "2025-11-17T01:01:16Z");
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Moves the time forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.lock();
        let span = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        *now = now.saturating_add(span).unwrap_or(*now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A poisoned clock still holds a valid instant.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

/// A wall-clock time with its UTC offset, as Python's timezone-aware `datetime` holds it,
/// at microsecond precision.
///
/// `Display` writes it exactly as `datetime.isoformat()`: `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM`,
/// without the fraction when the microseconds are zero, `+00:00` for UTC. Parsing accepts
/// that form, `Z`, a space instead of `T`, 1 to 9 fraction digits (cut to microseconds) and,
/// for records written without a zone, no offset at all (kept as written).
///
/// ```
/// use task_state_core::{TaskTime, Zone};
/// let zone = Zone::named("America/New_York").unwrap();
/// let t = TaskTime::from_timestamp("2025-03-09T06:59:59.999999Z".parse().unwrap(), &zone);
/// assert_eq!(t.to_string(), "2025-03-09T01:59:59.999999-05:00");
/// let t = TaskTime::from_timestamp("2025-03-09T07:00:00Z".parse().unwrap(), &zone);
/// assert_eq!(t.to_string(), "2025-03-09T03:00:00-04:00");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskTime {
    local: DateTime,
    offset: Option<Offset>,
}

impl TaskTime {
    /// The current time of `clock` in `zone`.
    pub fn now(clock: &dyn Clock, zone: &Zone) -> Self {
        Self::from_timestamp(clock.now(), zone)
    }

    /// `at` in `zone`, cut to microseconds as Python keeps it.
    pub fn from_timestamp(at: Timestamp, zone: &Zone) -> Self {
        let micros = at.as_microsecond();
        let at = Timestamp::from_microsecond(micros).unwrap_or(at);
        let offset = zone.time_zone().to_offset(at);
        TaskTime {
            local: offset.to_datetime(at),
            offset: Some(offset),
        }
    }

    /// The instant. A time stored without an offset is taken as UTC.
    pub fn timestamp(&self) -> Timestamp {
        let offset = self.offset.unwrap_or(Offset::UTC);
        offset
            .to_timestamp(self.local)
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The UTC offset, or `None` for a time stored without one.
    pub fn offset(&self) -> Option<Offset> {
        self.offset
    }

    /// The wall-clock date and time at that offset.
    pub fn local(&self) -> DateTime {
        self.local
    }
}

impl fmt::Display for TaskTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.local;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )?;
        let micros = d.subsec_nanosecond() / 1000;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        if let Some(offset) = self.offset {
            let total = offset.seconds();
            let sign = if total < 0 { '-' } else { '+' };
            let abs = total.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60)?;
            if abs % 60 != 0 {
                write!(f, ":{:02}", abs % 60)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TaskTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskTime({self})")
    }
}

/// Why a timestamp string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: {reason}")]
pub struct ParseTimeError {
    input: String,
    reason: String,
}

impl ParseTimeError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseTimeError {
            input: input.chars().take(64).collect(),
            reason: reason.into(),
        }
    }
}

/// Parses the timestamps Python's `isoformat()` writes, and the few forms around them that
/// other writers use. The grammar is exact, so that the Redis scripts (which check a record
/// before they edit it) accept the same texts: `YYYY-MM-DD`, then `T`, `t` or a space, then
/// `HH:MM:SS`, an optional fraction of 1 to 9 digits (cut to microseconds), then nothing (a
/// time without an offset), `Z`, `z`, or an offset `±HH`, `±HH:MM`, `±HH:MM:SS` or
/// `±HH:MM:SS.fraction` (the fraction of the offset is dropped). The year is 1 or later and
/// the date and time must exist (no February 30, no second 60).
impl FromStr for TaskTime {
    type Err = ParseTimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ParseTimeError::new(s, reason);
        let b = s.as_bytes();
        let shape = b.len() >= 19
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && [13, 16].iter().all(|&i| b[i] == b':')
            && matches!(b[10], b'T' | b't' | b' ')
            && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
                .iter()
                .all(|&i| b[i].is_ascii_digit());
        if !shape {
            return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let number = |from: usize, to: usize| -> i32 {
            b[from..to]
                .iter()
                .fold(0, |n, d| n * 10 + i32::from(d - b'0'))
        };
        let year = number(0, 4);
        if year < 1 {
            return Err(bad("the year must be 1 or later"));
        }
        let mut rest = &s[19..];
        let mut nanos = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad("the fraction of a second has 1 to 9 digits"));
            }
            let value: i32 = fraction[..digits].parse().unwrap_or(0);
            nanos = value * 10_i32.pow(9 - digits as u32);
            nanos -= nanos % 1000;
            rest = &fraction[digits..];
        }
        let local = DateTime::new(
            year as i16,
            number(5, 7) as i8,
            number(8, 10) as i8,
            number(11, 13) as i8,
            number(14, 16) as i8,
            number(17, 19) as i8,
            nanos,
        )
        .map_err(|e| bad(&e.to_string()))?;
        let offset = match rest {
            "" => None,
            "Z" | "z" => Some(Offset::UTC),
            text => Some(parse_offset(text).ok_or_else(|| bad("bad offset"))?),
        };
        Ok(TaskTime { local, offset })
    }
}

/// `±HH`, `±HH:MM`, `±HH:MM:SS` or `±HH:MM:SS.digits`.
fn parse_offset(text: &str) -> Option<Offset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut parts = rest.splitn(3, ':');
    let hours = parse_two(parts.next()?)?;
    let minutes = parts.next().map(parse_two).unwrap_or(Some(0))?;
    let seconds = match parts.next() {
        None => 0,
        Some(sec) => {
            let (whole, fraction) = sec.split_at(sec.len().min(2));
            let fraction_ok = fraction.is_empty()
                || fraction
                    .strip_prefix('.')
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
            if !fraction_ok {
                return None;
            }
            parse_two(whole)?
        }
    };
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60 + seconds)).ok()
}

fn parse_two(part: &str) -> Option<i32> {
    if part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

impl serde::Serialize for TaskTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TaskTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: &str, utc: &str) -> String {
        let zone = Zone::named(zone).unwrap();
        TaskTime::from_timestamp(utc.parse().unwrap(), &zone).to_string()
    }

    /// The system's database is read first, bundled or not; the bundle is only the fallback
    /// of a system without one. (`cargo test -p task-state-core` runs this without the
    /// bundle; the workspace's test run has it, since the command turns it on.)
    #[test]
    fn zones_come_from_the_system_database_where_there_is_one() {
        let db = format!("{:?}", jiff::tz::db());
        if cfg!(unix) && std::path::Path::new("/usr/share/zoneinfo/Asia/Seoul").exists() {
            assert!(db.contains("ZoneInfo(/usr/share/zoneinfo)"), "{db}");
        } else {
            let bundled = cfg!(feature = "tzdb-bundle");
            assert!(bundled, "no tz database: {db}");
        }
        assert_eq!(Zone::default().name(), DEFAULT_TIMEZONE);
        assert_eq!(Zone::named("Asia/Seoul").unwrap().name(), "Asia/Seoul");
    }

    #[test]
    fn formats_like_python_isoformat() {
        assert_eq!(
            at("Asia/Seoul", "2025-11-17T01:00:16.515926Z"),
            "2025-11-17T10:00:16.515926+09:00"
        );
        assert_eq!(
            at("Asia/Seoul", "2025-11-17T01:00:16Z"),
            "2025-11-17T10:00:16+09:00"
        );
        assert_eq!(
            at("UTC", "2025-11-17T01:00:16.000001Z"),
            "2025-11-17T01:00:16.000001+00:00"
        );
        assert_eq!(
            at("Asia/Kolkata", "2025-01-01T00:00:00Z"),
            "2025-01-01T05:30:00+05:30"
        );
    }

    #[test]
    fn cuts_nanoseconds_to_microseconds() {
        assert_eq!(
            at("UTC", "2025-01-01T00:00:00.123456789Z"),
            "2025-01-01T00:00:00.123456+00:00"
        );
        assert_eq!(
            at("UTC", "2025-01-01T00:00:00.000000999Z"),
            "2025-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn follows_daylight_saving_time() {
        assert_eq!(
            at("America/New_York", "2025-03-09T06:59:59.999999Z"),
            "2025-03-09T01:59:59.999999-05:00"
        );
        assert_eq!(
            at("America/New_York", "2025-03-09T07:00:00Z"),
            "2025-03-09T03:00:00-04:00"
        );
        assert_eq!(
            at("America/New_York", "2025-11-02T05:30:00Z"),
            "2025-11-02T01:30:00-04:00"
        );
        assert_eq!(
            at("America/New_York", "2025-11-02T06:30:00Z"),
            "2025-11-02T01:30:00-05:00"
        );
    }

    #[test]
    fn zone_rules_are_current() {
        // Mexico abolished daylight saving time in October 2022: tz data from 2022 or earlier
        // says -05:00 here.
        assert_eq!(
            at("America/Mexico_City", "2023-07-01T12:00:00Z"),
            "2023-07-01T06:00:00-06:00"
        );
    }

    #[test]
    fn unknown_zone_is_a_config_error() {
        assert!(matches!(
            Zone::named("Nowhere/Atlantis"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn parses_and_reformats_unchanged() {
        for text in [
            "2025-11-17T10:00:16.515926+09:00",
            "2025-11-17T10:00:16+09:00",
            "2025-03-09T01:59:59.999999-05:00",
            "2025-11-17T10:00:16+00:00",
            "2025-11-17T10:00:16.5",
            "1890-01-01T00:00:00+08:27:52",
            "2024-02-29T23:59:59.999999-23:59",
        ] {
            let t: TaskTime = text.parse().unwrap();
            let back = t.to_string();
            let expected = if text.ends_with(".5") {
                "2025-11-17T10:00:16.500000"
            } else {
                text
            };
            assert_eq!(back, expected);
        }
    }

    #[test]
    fn accepts_z_and_space() {
        let t: TaskTime = "2025-11-17 01:00:16.5Z".parse().unwrap();
        assert_eq!(t.to_string(), "2025-11-17T01:00:16.500000+00:00");
        assert_eq!(
            t.timestamp(),
            "2025-11-17T01:00:16.5Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn accepts_the_forms_around_isoformat() {
        for (text, shown) in [
            ("2025-11-17t10:00:16+09", "2025-11-17T10:00:16+09:00"),
            (
                "2025-11-17T10:00:16.123456789z",
                "2025-11-17T10:00:16.123456+00:00",
            ),
            (
                "1890-01-01T00:00:00+08:27:52.5",
                "1890-01-01T00:00:00+08:27:52",
            ),
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00"),
        ] {
            assert_eq!(
                text.parse::<TaskTime>().unwrap().to_string(),
                shown,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "yesterday",
            "2025-13-01T00:00:00+00:00",
            "2025-11-17T10:00:16+9",
            "2025-11-17",
            "2025-02-29T00:00:00+00:00",
            "0000-01-01T00:00:00+00:00",
            "2025-11-17T10:00:60+00:00",
            "2025-11-17T24:00:00+00:00",
            "2025-11-17T10:00:16.+09:00",
            "2025-11-17T10:00:16.1234567890+09:00",
            "2025-11-17T10:00:16+09:00:",
            "2025-11-17T10:00:16+09:00:00.",
            "2025-11-17T10:00:16+09:00:00.x",
            "2025-11-17T10:00:16+0900",
            "2025-11-17T10:00:16Zz",
            "2025-11-17T10:00:16 +09:00",
            "2025-11-17X10:00:16",
            "20251117T100016.123",
        ] {
            assert!(text.parse::<TaskTime>().is_err(), "{text}");
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new("2025-01-01T00:00:00Z".parse().unwrap());
        let copy = clock.clone();
        copy.advance(std::time::Duration::from_millis(1500));
        assert_eq!(
            clock.now(),
            "2025-01-01T00:00:01.5Z".parse::<Timestamp>().unwrap()
        );
    }
}
