//! Conversions between [`TaskTime`] and the [`time`](https://docs.rs/time) crate's
//! `OffsetDateTime` (feature `time`), for applications that keep their times in `time`.
//!
//! The project itself keeps zone rules in jiff (see `docs/architecture.md`): `time-tz` 2
//! bundles 2022 zone data. These conversions need no zone rules: both sides carry a fixed
//! UTC offset, which is kept as it is.
//!
//! - `OffsetDateTime::from(task_time)` is exact. A `TaskTime` stored without an offset is
//!   taken as UTC, as [`TaskTime::timestamp`] takes it.
//! - `TaskTime::try_from(offset_date_time)` cuts the nanoseconds to microseconds (toward the
//!   earlier time, as Python keeps them), and fails with [`ParseTimeError`] for a year
//!   outside 1 to 9999, which Python's `datetime` cannot hold either.
//!
//! ```
//! use task_state_core::TaskTime;
//! use time::{OffsetDateTime, UtcOffset};
//!
//! let stored: TaskTime = "2025-11-17T10:00:16.515926+09:00".parse().unwrap();
//! let t = OffsetDateTime::from(stored);
//! assert_eq!(t.offset(), UtcOffset::from_hms(9, 0, 0).unwrap());
//! assert_eq!(t.unix_timestamp(), 1_763_341_216);
//! assert_eq!(t.microsecond(), 515_926);
//!
//! let precise = t.replace_nanosecond(515_926_789).unwrap();
//! let back = TaskTime::try_from(precise).unwrap();
//! assert_eq!(back, stored, "nanoseconds cut to microseconds");
//! assert_eq!(back.to_string(), "2025-11-17T10:00:16.515926+09:00");
//! ```

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::{ParseTimeError, TaskTime};

/// Exact: the same wall-clock time at the same offset; a `TaskTime` stored without an offset
/// is taken as UTC (feature `time`).
///
/// ```
/// let t: task_state_core::TaskTime = "2025-11-17T10:00:16.515926+09:00".parse().unwrap();
/// let converted = time::OffsetDateTime::from(t);
/// assert_eq!((converted.hour(), converted.microsecond()), (10, 515_926));
/// ```
impl From<TaskTime> for OffsetDateTime {
    fn from(t: TaskTime) -> Self {
        let local = t.local();
        let offset = t.offset().map_or(0, |o| o.seconds());
        // jiff's civil range (years -9999 to 9999, offsets up to 25:59:59) lies within
        // time's default range, so none of these can fail.
        let month = Month::try_from(local.month() as u8).expect("a month of 1 to 12");
        let date = Date::from_calendar_date(i32::from(local.year()), month, local.day() as u8)
            .expect("a date in time's range");
        let clock = Time::from_hms_nano(
            local.hour() as u8,
            local.minute() as u8,
            local.second() as u8,
            local.subsec_nanosecond() as u32,
        )
        .expect("a time of day");
        let offset = UtcOffset::from_whole_seconds(offset).expect("an offset in time's range");
        PrimitiveDateTime::new(date, clock).assume_offset(offset)
    }
}

/// Keeps the offset and cuts the nanoseconds to microseconds, toward the earlier time, as
/// Python's `datetime` holds them (feature `time`).
///
/// # Errors
/// [`ParseTimeError`] for a year outside 1 to 9999.
///
/// ```
/// use task_state_core::TaskTime;
/// let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_763_341_216_515_926_999).unwrap();
/// assert_eq!(TaskTime::try_from(t).unwrap().to_string(), "2025-11-17T01:00:16.515926+00:00");
/// ```
impl TryFrom<OffsetDateTime> for TaskTime {
    type Error = ParseTimeError;

    fn try_from(t: OffsetDateTime) -> Result<Self, Self::Error> {
        let (hours, minutes, seconds) = t.offset().as_hms();
        let sign = if t.offset().is_negative() { '-' } else { '+' };
        // Through the isoformat text, so that one parser decides what a TaskTime may hold.
        // A year outside 1 to 9999 is written with its sign, which no parser of it accepts.
        let year = if (1..=9999).contains(&t.year()) {
            format!("{:04}", t.year())
        } else {
            format!("{:+05}", t.year())
        };
        format!(
            "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond(),
            hours.unsigned_abs(),
            minutes.unsigned_abs(),
            seconds.unsigned_abs(),
        )
        .parse()
    }
}

#[cfg(test)]
mod tests {
    use time::{OffsetDateTime, UtcOffset};

    use crate::{Clock, ManualClock, TaskTime, Zone};

    fn task_time(text: &str) -> TaskTime {
        text.parse().unwrap()
    }

    #[test]
    fn round_trips_keep_the_instant_and_the_offset() {
        for text in [
            "2025-11-17T10:00:16.515926+09:00",
            "2025-03-09T01:59:59.999999-05:00",
            "2025-11-17T01:00:16+00:00",
            "1890-01-01T00:00:00+08:27:52",
            "0001-01-01T00:00:00+00:00",
            "9999-12-30T12:00:00.999999+09:00",
        ] {
            let t = task_time(text);
            let converted = OffsetDateTime::from(t);
            assert_eq!(
                converted.unix_timestamp_nanos(),
                t.timestamp().as_nanosecond(),
                "{text}"
            );
            assert_eq!(
                converted.offset().whole_seconds(),
                t.offset().unwrap().seconds()
            );
            let back = TaskTime::try_from(converted).unwrap();
            assert_eq!(back, t, "{text}");
            assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn a_time_without_an_offset_is_taken_as_utc() {
        let t = OffsetDateTime::from(task_time("2025-11-17T10:00:16.5"));
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert_eq!(t.unix_timestamp(), 1_763_373_616);
        assert_eq!(t.millisecond(), 500);
    }

    #[test]
    fn nanoseconds_are_cut_to_microseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_763_341_216_515_926_999)
            .unwrap()
            .to_offset(UtcOffset::from_hms(-3, -30, 0).unwrap());
        let cut = TaskTime::try_from(t).unwrap();
        assert_eq!(cut.to_string(), "2025-11-16T21:30:16.515926-03:30");
        // Before 1970 too: toward the earlier time, never rounded up.
        let early = OffsetDateTime::from_unix_timestamp_nanos(-1_999).unwrap();
        assert_eq!(
            TaskTime::try_from(early).unwrap().to_string(),
            "1969-12-31T23:59:59.999998+00:00"
        );
    }

    #[test]
    fn years_python_cannot_hold_are_refused() {
        let year_zero = OffsetDateTime::from_unix_timestamp(-62_167_219_200).unwrap();
        assert_eq!(year_zero.year(), 0);
        let err = TaskTime::try_from(year_zero).unwrap_err();
        assert!(err.to_string().contains("+0000-01-01"), "{err}");
    }

    #[test]
    fn now_in_a_zone_converts_to_the_same_instant() {
        let clock = ManualClock::new("2025-07-01T12:00:00.123456Z".parse().unwrap());
        let zone = Zone::named("America/Mexico_City").unwrap();
        let t = OffsetDateTime::from(TaskTime::now(&clock, &zone));
        assert_eq!(t.offset(), UtcOffset::from_hms(-6, 0, 0).unwrap());
        assert_eq!(t.unix_timestamp_nanos(), clock.now().as_nanosecond());
    }
}
