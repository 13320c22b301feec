//! The TTL rules of `lua/lib/layout.lua`, for the writes made in Rust: how far the metadata
//! hash and the index sets outlive their record, and the headroom a refreshed TTL gets.
//! Every TTL here is in milliseconds, -1 meaning none (the key never expires).

use task_state_core::layout;

/// How far an index set outlives its record ([`layout::INDEX_MARGIN_MS`]).
pub(crate) const INDEX_MARGIN_MS: i64 = layout::INDEX_MARGIN_MS as i64;
/// How far the metadata hash outlives its record ([`layout::METADATA_GRACE_SECONDS`]).
pub(crate) const METADATA_GRACE_MS: i64 = layout::METADATA_GRACE_SECONDS as i64 * 1_000;
/// The longest headroom a refreshed TTL gets ([`layout::REFRESH_HEADROOM_MAX_MS`]).
const REFRESH_HEADROOM_MAX_MS: i64 = layout::REFRESH_HEADROOM_MAX_MS as i64;

/// The TTL a write gives its record: the longer of the current one (PTTL; -1 none, -2 no
/// key) and the setting (`longer_ttl` of `lua/lib/layout.lua`).
pub(crate) fn longer(current: i64, target: i64) -> i64 {
    if current == -1 || target == -1 {
        -1
    } else {
        current.max(target)
    }
}

/// What a key beside a record of TTL `record` must live: `margin` longer (none when the
/// record has none).
pub(crate) fn beyond(record: i64, margin: i64) -> i64 {
    if record == -1 {
        -1
    } else {
        record + margin
    }
}

/// The headroom a TTL refreshed beside a record of TTL `record` gets on top of what it
/// needs: a tenth of the record's, at most an hour, so that the next writes find it long
/// enough and write no TTL.
pub(crate) fn headroom(record: i64) -> i64 {
    if record == -1 {
        0
    } else {
        (record / 10).min(REFRESH_HEADROOM_MAX_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_is_never_shortened_and_none_stays_none() {
        assert_eq!(longer(-1, 5_000), -1);
        assert_eq!(longer(9_000, 5_000), 9_000);
        assert_eq!(longer(-2, 5_000), 5_000);
        assert_eq!(beyond(-1, INDEX_MARGIN_MS), -1);
        assert_eq!(beyond(5_000, INDEX_MARGIN_MS), 5_000 + INDEX_MARGIN_MS);
        assert_eq!(headroom(-1), 0);
        assert_eq!(headroom(50_000), 5_000);
        assert_eq!(headroom(i64::MAX / 2), REFRESH_HEADROOM_MAX_MS);
    }
}
