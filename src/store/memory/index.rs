//! The memory store's full-text index: word → the messages that contain it, by store-wide
//! position, so a search walks the rarest word's list newest first and checks the others.
//! Words are hashed (an append costs a hash lookup and a push per word); a sorted vocabulary,
//! touched only by words never seen before, answers prefixes.

use std::collections::{BTreeSet, HashMap};

/// A word's messages by store-wide position, ascending.
type Postings = Vec<u64>;

use crate::domain::{ThreadId, search};

/// Where an indexed message lives, and the words it was indexed under.
struct Doc {
    thread: ThreadId,
    position: usize,
    words: Vec<String>,
}

#[derive(Default)]
pub(super) struct TextIndex {
    postings: HashMap<String, Postings>,
    vocabulary: BTreeSet<String>,
    docs: HashMap<u64, Doc>,
}

/// What a message is indexed under: its distinct words, sorted. Computed before the index is
/// locked, so appends hold the lock only to insert.
pub(super) fn indexable(text: &str) -> Vec<String> {
    let mut words = search::words(text);
    words.sort_unstable();
    words.dedup();
    words
}

impl TextIndex {
    /// Indexes (or re-indexes) message `doc`, at `position` of `thread`, under `words` (from
    /// [`indexable`]). No words (a tombstone) takes it out.
    pub(super) fn set(&mut self, doc: u64, thread: &ThreadId, position: usize, words: Vec<String>) {
        if self.docs.contains_key(&doc) {
            self.remove(doc);
        }
        if words.is_empty() {
            return;
        }
        for word in &words {
            match self.postings.get_mut(word) {
                // A new message is the newest: appended. A re-indexed one goes in its place.
                Some(docs) if docs.last().is_none_or(|&last| last < doc) => docs.push(doc),
                Some(docs) => {
                    if let Err(at) = docs.binary_search(&doc) {
                        docs.insert(at, doc);
                    }
                }
                None => {
                    self.postings.insert(word.clone(), vec![doc]);
                    self.vocabulary.insert(word.clone());
                }
            }
        }
        self.docs.insert(
            doc,
            Doc {
                thread: thread.clone(),
                position,
                words,
            },
        );
    }

    fn remove(&mut self, doc: u64) {
        let Some(old) = self.docs.remove(&doc) else {
            return;
        };
        for word in old.words {
            if let Some(docs) = self.postings.get_mut(&word) {
                if let Ok(at) = docs.binary_search(&doc) {
                    docs.remove(at);
                }
                if docs.is_empty() {
                    self.postings.remove(&word);
                    self.vocabulary.remove(&word);
                }
            }
        }
    }

    /// Up to `limit` matches before `before`, newest first, among the threads `allowed` accepts:
    /// `(doc, thread, position)`.
    pub(super) fn matches(
        &self,
        query: &search::Query,
        before: Option<u64>,
        limit: usize,
        allowed: impl Fn(&ThreadId) -> bool,
    ) -> Vec<(u64, ThreadId, usize)> {
        let prefix = query.prefix();
        // The rarest whole word drives the walk; with none, every word with the prefix.
        let rarest = query
            .whole()
            .iter()
            .map(|w| self.postings.get(w))
            .min_by_key(|docs| docs.map_or(0, Vec::len));
        let candidates: Vec<u64> = match rarest {
            Some(None) => return Vec::new(),
            Some(Some(docs)) => {
                let end = docs.partition_point(|&d| d < before.unwrap_or(u64::MAX));
                docs[..end].iter().rev().copied().collect()
            }
            None => {
                let mut union = BTreeSet::new();
                for docs in self
                    .vocabulary
                    .range(prefix.to_owned()..)
                    .take_while(|word| word.starts_with(prefix))
                    .filter(|word| query.fits_last(word))
                    .filter_map(|word| self.postings.get(word))
                {
                    let end = docs.partition_point(|&d| d < before.unwrap_or(u64::MAX));
                    union.extend(&docs[..end]);
                }
                union.into_iter().rev().collect()
            }
        };
        let mut out = Vec::new();
        for doc in candidates {
            let Some(d) = self.docs.get(&doc) else {
                continue;
            };
            let has = |w: &String| d.words.binary_search(w).is_ok();
            let fits = query.whole().iter().all(has)
                && d.words.iter().any(|w| query.fits_last(w))
                && allowed(&d.thread);
            if fits {
                out.push((doc, d.thread.clone(), d.position));
                if out.len() == limit {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_word_the_last_as_a_prefix_newest_first() {
        let t = ThreadId::generate();
        let mut index = TextIndex::default();
        index.set(1, &t, 0, indexable("Lunch tomorrow?"));
        index.set(2, &t, 1, indexable("no lunch today"));
        index.set(3, &t, 2, indexable("lunch at the café tomorrow"));
        let q = search::Query::parse("LUNCH tom").unwrap();
        let found: Vec<u64> = index
            .matches(&q, None, 10, |_| true)
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(found, [3, 1]);
        let q = search::Query::parse("cafe").unwrap();
        assert_eq!(index.matches(&q, None, 10, |_| true).len(), 1);
        // Edited away, and deleted: no longer found.
        index.set(3, &t, 2, indexable("dinner"));
        index.set(1, &t, 0, indexable(""));
        let q = search::Query::parse("lunch tom").unwrap();
        assert!(index.matches(&q, None, 10, |_| true).is_empty());
        let q = search::Query::parse("lunch").unwrap();
        assert_eq!(index.matches(&q, Some(2), 10, |_| true).len(), 0);
        assert_eq!(index.matches(&q, Some(3), 10, |_| true).len(), 1);
    }
}
