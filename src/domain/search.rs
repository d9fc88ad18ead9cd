//! Search terms: how message text and queries are cut into words, the same for every backend.
//!
//! A word is a run of letters and digits, lowercased and stripped of accents (`Été` → `ete`).
//! The SQL engines index with their own tokenizers configured to the same rule (SQLite FTS5's
//! `unicode61 remove_diacritics 2`, PostgreSQL's `unaccent` then `simple`); the memory store
//! indexes with [`words`].

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most words a query may hold.
pub const MAX_QUERY_WORDS: usize = 8;

/// The words of `text`, in order, folded.
pub fn words(text: &str) -> Vec<String> {
    // Most chat is ASCII: no decomposition needed (it is the costly part).
    if text.is_ascii() {
        return text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A parsed query: every word must match; the last one as a prefix too (the user is typing it),
/// unless it is a single character (a one-letter prefix matches nearly everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// No word at all.
    Empty,
    TooLong,
}

impl Query {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let mut words = words(raw);
        if words.is_empty() {
            return Err(QueryError::Empty);
        }
        if words.len() > MAX_QUERY_WORDS {
            return Err(QueryError::TooLong);
        }
        // A repeated word adds nothing but work; the last one keeps its place (it is the prefix).
        let last = words.pop().unwrap_or_default();
        words.sort_unstable();
        words.dedup();
        words.retain(|w| *w != last);
        words.push(last);
        Ok(Self { words })
    }

    /// The words matched whole.
    pub fn whole(&self) -> &[String] {
        &self.words[..self.words.len() - 1]
    }

    /// The last word, matched as a prefix when [`Query::by_prefix`].
    pub fn prefix(&self) -> &str {
        self.words.last().map(String::as_str).unwrap_or_default()
    }

    /// Whether the last word matches as a prefix (else whole).
    pub fn by_prefix(&self) -> bool {
        self.prefix().chars().nth(1).is_some()
    }

    /// Whether `word` matches the last word of the query.
    pub fn fits_last(&self, word: &str) -> bool {
        if self.by_prefix() {
            word.starts_with(self.prefix())
        } else {
            word == self.prefix()
        }
    }

    /// Whether `text` matches: it has every whole word, and one that fits the last.
    pub fn matches(&self, text: &str) -> bool {
        let words = words(text);
        self.whole().iter().all(|w| words.contains(w)) && words.iter().any(|w| self.fits_last(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_letters_and_digits() {
        assert_eq!(
            words("Été à l'Hôtel, room 42! naïve—CAFÉ"),
            ["ete", "a", "l", "hotel", "room", "42", "naive", "cafe"]
        );
        assert_eq!(words("  ... "), Vec::<String>::new());
        assert_eq!(
            words("Plain ASCII, 2 Words!"),
            ["plain", "ascii", "2", "words"]
        );
    }

    #[test]
    fn queries_keep_the_last_word_as_the_prefix() {
        let q = Query::parse("lunch Lunch tomor").unwrap();
        assert_eq!(q.whole(), ["lunch"]);
        assert_eq!(q.prefix(), "tomor");
        assert!(q.matches("Tomorrow: LUNCH!"));
        assert!(!q.matches("lunch today"));
        assert!(!q.matches("tomorrow"));
        let single = Query::parse("plan b").unwrap();
        assert!(!single.by_prefix());
        assert!(single.matches("plan B it is"));
        assert!(!single.matches("plan but"));
        assert_eq!(Query::parse("?!").unwrap_err(), QueryError::Empty);
        assert_eq!(
            Query::parse(&"a ".repeat(9)).unwrap_err(),
            QueryError::TooLong
        );
        assert_eq!(
            Query::parse(&"a".repeat(300)).unwrap_err(),
            QueryError::TooLong
        );
    }
}
