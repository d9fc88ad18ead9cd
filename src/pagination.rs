//! Bidirectional cursor pagination of the accounts API: `{rows, sort, cursor_next, cursor_prev}`.
//!
//! A cursor is base64 of JSON `{"sort": "NEWEST_FIRST" | "OLDEST_FIRST", "lastSeen": "<id>"}`.
//! The reading threadline takes of the messenger README (whose examples contradict each other):
//!
//! - No cursor: the newest page, rows `NEWEST_FIRST`.
//! - `{"sort": "OLDEST_FIRST", "lastSeen": X}`: the items just *older* than X, rows
//!   `OLDEST_FIRST`. Every page's `cursor_next` is such a cursor on its oldest row: following
//!   `cursor_next` walks strictly older items, and is `null` once nothing older exists.
//! - `{"sort": "NEWEST_FIRST", "lastSeen": X}`: the items just *newer* than X, rows
//!   `NEWEST_FIRST`. Every page's `cursor_prev` is such a cursor on its newest row (on X itself
//!   when the page is empty): following `cursor_prev` walks strictly newer items, including ones
//!   created after the walk began; an empty page means caught up, and its `cursor_prev` can be
//!   polled again later.
//!
//! The README's own first page (`cursor_next = OLDEST_FIRST from 1240`, `cursor_prev =
//! NEWEST_FIRST from 1241`) and its "newer" page decode exactly this way.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use serde::{Deserialize, Serialize};

use crate::{
    error::ApiError,
    store::{Anchor, Window},
};

/// Page size when `pageSize` is absent, and the most one page may hold.
pub const DEFAULT_PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sort {
    NewestFirst,
    OldestFirst,
}

/// The cursor's JSON, field order as the README prints it (so its base64 matches byte for byte).
#[derive(Debug, Serialize, Deserialize)]
struct CursorJson {
    sort: Sort,
    #[serde(rename = "lastSeen")]
    last_seen: String,
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

pub fn encode_cursor(sort: Sort, last_seen: &str) -> String {
    let json = serde_json::to_vec(&CursorJson {
        sort,
        last_seen: last_seen.to_owned(),
    })
    .unwrap_or_default();
    STANDARD.encode(json)
}

/// Decodes a cursor. Accepts standard or URL-safe base64, with or without padding, and a `+`
/// that an unencoded query string turned into a space.
pub fn decode_cursor(raw: &str) -> Option<(Sort, String)> {
    let raw = raw.trim().replace(' ', "+");
    let bytes = LENIENT_STANDARD
        .decode(&raw)
        .or_else(|_| LENIENT_URL_SAFE.decode(&raw))
        .ok()?;
    let cursor: CursorJson = serde_json::from_slice(&bytes).ok()?;
    Some((cursor.sort, cursor.last_seen))
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "cursor must be a cursor_next or cursor_prev of this list",
    )
}

/// A parsed `pageSize` + `cursor`.
#[derive(Debug, Clone)]
pub struct PageRequest<Id> {
    pub anchor: Anchor<Id>,
    pub sort: Sort,
    pub limit: usize,
}

impl<Id: Clone> PageRequest<Id> {
    /// `parse_id` validates `lastSeen`; a cursor naming no valid id is `invalid_cursor`.
    pub fn parse(
        page_size: Option<&str>,
        cursor: Option<&str>,
        parse_id: impl Fn(&str) -> Option<Id>,
    ) -> Result<Self, ApiError> {
        let limit = match page_size.map(str::trim) {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if n >= 1 => n.min(MAX_PAGE_SIZE as u64) as usize,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_page_size",
                        "pageSize must be a positive integer",
                    ));
                }
            },
        };
        let (anchor, sort) = match cursor {
            None | Some("") => (Anchor::Newest, Sort::NewestFirst),
            Some(raw) => {
                let (sort, last_seen) = decode_cursor(raw).ok_or_else(invalid_cursor)?;
                let id = parse_id(&last_seen).ok_or_else(invalid_cursor)?;
                match sort {
                    Sort::OldestFirst => (Anchor::Before(id), Sort::OldestFirst),
                    Sort::NewestFirst => (Anchor::After(id), Sort::NewestFirst),
                }
            }
        };
        Ok(Self {
            anchor,
            sort,
            limit,
        })
    }
}

/// `Paginated<T>` as the README shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub rows: Vec<T>,
    pub sort: Sort,
    pub cursor_next: Option<String>,
    pub cursor_prev: Option<String>,
}

impl<T> Paginated<T> {
    /// Orders a window's rows as the request's `sort` says and sets both cursors.
    pub fn new<U, Id: AsRef<str>>(
        window: Window<U>,
        request: &PageRequest<Id>,
        id_of: impl Fn(&U) -> &str,
        view: impl FnMut(&U) -> T,
    ) -> Self {
        let Window {
            mut items,
            more_before,
            ..
        } = window;
        let oldest = items.first().map(|u| id_of(u).to_owned());
        let newest = items.last().map(|u| id_of(u).to_owned());
        let cursor_next = match (&oldest, &request.anchor) {
            (Some(oldest), _) if more_before => Some(encode_cursor(Sort::OldestFirst, oldest)),
            _ => None,
        };
        let cursor_prev = match (&newest, &request.anchor) {
            (Some(newest), _) => Some(encode_cursor(Sort::NewestFirst, newest)),
            // Caught up on the newer side: keep polling from the same place.
            (None, Anchor::After(seen)) => Some(encode_cursor(Sort::NewestFirst, seen.as_ref())),
            (None, _) => None,
        };
        if request.sort == Sort::NewestFirst {
            items.reverse();
        }
        Self {
            rows: items.iter().map(view).collect(),
            sort: request.sort,
            cursor_next,
            cursor_prev,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_cursors_round_trip_byte_for_byte() {
        let readme = "eyJzb3J0IjoiT0xERVNUX0ZJUlNUIiwibGFzdFNlZW4iOiIxMjQwIn0=";
        assert_eq!(
            decode_cursor(readme),
            Some((Sort::OldestFirst, "1240".to_owned()))
        );
        assert_eq!(encode_cursor(Sort::OldestFirst, "1240"), readme);
    }

    #[test]
    fn lenient_decoding() {
        let c = encode_cursor(Sort::NewestFirst, "a");
        assert!(decode_cursor(c.trim_end_matches('=')).is_some());
        assert!(decode_cursor(&c.replace('+', " ")).is_some());
        assert!(decode_cursor("not base64!").is_none());
        assert!(decode_cursor(&STANDARD.encode("{}")).is_none());
        assert!(decode_cursor(&STANDARD.encode(r#"{"sort":"SIDEWAYS","lastSeen":"1"}"#)).is_none());
    }

    #[test]
    fn page_sizes() {
        let parse = |s| PageRequest::<String>::parse(s, None, |x| Some(x.to_owned()));
        assert_eq!(parse(None).unwrap().limit, 10);
        assert_eq!(parse(Some("1000")).unwrap().limit, MAX_PAGE_SIZE);
        for bad in ["0", "-1", "x", "1.5"] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
