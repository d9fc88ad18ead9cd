//! Wall-clock timestamps, stored as milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

/// JavaScript's `Date.prototype.toISOString()` layout: always three fractional digits and `Z`.
/// The stub's clients parse and sometimes compare these strings, so the layout is part of the
/// contract.
const ISO_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A point in time with millisecond precision, like a JavaScript `Date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self(ms)
    }

    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `2024-05-01T12:00:00.000Z`, as `new Date().toISOString()` prints it.
    pub fn to_iso(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(ISO_MILLIS).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_javascript_to_iso_string() {
        assert_eq!(
            Timestamp::from_millis(1_612_312_312_312).to_iso(),
            "2021-02-03T00:31:52.312Z"
        );
        assert_eq!(
            Timestamp::from_millis(0).to_iso(),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
