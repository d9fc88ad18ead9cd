//! Who acts: what every face (REST, the socket) establishes about a caller before asking `chat`
//! for anything, so that the access rules live in one place.

use std::net::IpAddr;

use super::{Thread, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account acting: a token's subject, a gateway's `X-User-Id` or socket `userId`, or
    /// the stub's anonymous `"me"`.
    pub user: UserId,
    /// The identity comes from a verified token (`jwt` mode): the access rules apply.
    pub verified: bool,
    /// The client's address, when a rate limit keys on it.
    pub ip: Option<IpAddr>,
}

impl Actor {
    /// The stub's caller: nobody in particular, no rules.
    pub fn anonymous(ip: Option<IpAddr>) -> Self {
        Self {
            user: UserId::anonymous(),
            verified: false,
            ip,
        }
    }

    /// The user a per-user limit counts: anyone but the anonymous `"me"`, who shares only
    /// their address's bucket.
    pub fn counted_user(&self) -> Option<&UserId> {
        Some(&self.user).filter(|user| !user.is_anonymous())
    }

    /// Only members of a thread read it, read its messages and post to it; without a verified
    /// identity there is nobody to refuse.
    pub fn may_enter(&self, thread: &Thread) -> bool {
        !self.verified || thread.has_member(&self.user)
    }

    /// [`Actor::may_enter`] a thread whose members, sorted, are `members`.
    pub fn may_enter_among(&self, members: &[UserId]) -> bool {
        !self.verified || members.binary_search(&self.user).is_ok()
    }

    /// Whether the caller is someone (not the anonymous `"me"`).
    pub fn is_identified(&self) -> bool {
        self.user != UserId::anonymous()
    }
}
