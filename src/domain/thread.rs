//! Threads: a set of members and a title. The accounts API calls a thread a conversation.

use super::{ThreadId, Timestamp, UserId};

/// Most members a thread may have; bounds the cost of resolving and indexing a member set.
pub const MAX_MEMBERS: usize = 1_000;
/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A stored thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: ThreadId,
    pub title: Option<String>,
    /// Members in the order the creator listed them, without duplicates.
    pub member_ids: Vec<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Thread {
    /// A new thread, with a fresh time-ordered id, created now.
    pub fn new(title: Option<String>, members: &MemberSet) -> Self {
        let now = Timestamp::now();
        Self {
            id: ThreadId::generate(),
            title,
            member_ids: members.listed().to_vec(),
            created_at: now,
            updated_at: now,
        }
    }

    pub fn has_member(&self, user: &UserId) -> bool {
        self.member_ids.contains(user)
    }
}

/// The members of a thread as a set: order and duplicates do not matter, so two requests naming
/// the same people resolve to the same thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberSet {
    /// Insertion order, duplicates removed: what the thread shows.
    listed: Vec<UserId>,
    /// Sorted: the identity of the set.
    key: Vec<UserId>,
}

/// Why a member list is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSetError {
    Empty,
    TooMany,
}

impl MemberSet {
    pub fn new(ids: impl IntoIterator<Item = UserId>) -> Result<Self, MemberSetError> {
        let mut listed: Vec<UserId> = Vec::new();
        // A set for the duplicates check: linear in the list, not quadratic.
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if seen.insert(id.clone()) {
                if listed.len() == MAX_MEMBERS {
                    return Err(MemberSetError::TooMany);
                }
                listed.push(id);
            }
        }
        if listed.is_empty() {
            return Err(MemberSetError::Empty);
        }
        let mut key = listed.clone();
        key.sort();
        Ok(Self { listed, key })
    }

    /// The canonical form: sorted, one entry per member.
    pub fn key(&self) -> &[UserId] {
        &self.key
    }

    pub fn listed(&self) -> &[UserId] {
        &self.listed
    }
}

/// A request to create a thread, or resolve the one with the same members.
#[derive(Debug, Clone)]
pub struct NewThread {
    pub title: Option<String>,
    pub members: MemberSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[&str]) -> Vec<UserId> {
        raw.iter().map(|r| UserId::parse(r).unwrap()).collect()
    }

    #[test]
    fn member_sets_ignore_order_and_duplicates() {
        let a = MemberSet::new(ids(&["b", "a", "b"])).unwrap();
        let b = MemberSet::new(ids(&["a", "b"])).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.listed(), ids(&["b", "a"]).as_slice());
    }

    #[test]
    fn empty_member_set_is_rejected() {
        assert_eq!(MemberSet::new(vec![]), Err(MemberSetError::Empty));
    }
}
