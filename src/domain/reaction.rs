//! Reactions: who reacted to a message with which emoji.

use unicode_segmentation::UnicodeSegmentation;

use super::UserId;

/// Most distinct emoji one message may carry.
pub const MAX_REACTIONS: usize = 20;
/// Longest `:short_code:`, colons included.
pub const MAX_SHORT_CODE_BYTES: usize = 32;
/// Longest single-grapheme emoji: the longest standard ZWJ sequences are about 35 bytes; a
/// grapheme of stacked combining marks ("Zalgo") is refused long before it costs anything.
pub const MAX_GRAPHEME_BYTES: usize = 64;

/// A reaction's emoji: one grapheme (`👍`, `👩🏽‍💻`, `🇫🇷`) or a `:short_code:` of at most 32 bytes
/// (`:party_parrot:`), letters, digits, `_`, `+` and `-` between the colons.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Option<Self> {
        let short_code = raw.len() > 2
            && raw.len() <= MAX_SHORT_CODE_BYTES
            && raw.starts_with(':')
            && raw.ends_with(':')
            && raw[1..raw.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'));
        let grapheme = !raw.is_empty()
            && raw.len() <= MAX_GRAPHEME_BYTES
            && raw.graphemes(true).count() == 1
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        (short_code || grapheme).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One emoji on a message and who chose it, in the order they reacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: Emoji,
    pub user_ids: Vec<UserId>,
}

/// Why a reaction cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionError {
    /// The message already carries [`MAX_REACTIONS`] other emoji.
    TooMany,
}

/// Adds (`add`) or removes `user`'s `emoji` in `reactions`, which keeps emoji in the order they
/// were first used. Returns whether anything changed: adding twice, or removing what is not
/// there, changes nothing.
pub fn apply(
    reactions: &mut Vec<Reaction>,
    emoji: &Emoji,
    user: &UserId,
    add: bool,
) -> Result<bool, ReactionError> {
    let at = reactions.iter().position(|r| &r.emoji == emoji);
    match (at, add) {
        (Some(i), true) => {
            if reactions[i].user_ids.contains(user) {
                return Ok(false);
            }
            reactions[i].user_ids.push(user.clone());
            Ok(true)
        }
        (None, true) => {
            if reactions.len() >= MAX_REACTIONS {
                return Err(ReactionError::TooMany);
            }
            reactions.push(Reaction {
                emoji: emoji.clone(),
                user_ids: vec![user.clone()],
            });
            Ok(true)
        }
        (Some(i), false) => {
            let before = reactions[i].user_ids.len();
            reactions[i].user_ids.retain(|u| u != user);
            if reactions[i].user_ids.is_empty() {
                reactions.remove(i);
                return Ok(true);
            }
            Ok(reactions[i].user_ids.len() != before)
        }
        (None, false) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_one_grapheme_or_a_short_code() {
        for good in [
            "👍",
            "👩🏽‍💻",
            "🇫🇷",
            "❤️",
            "a",
            ":party_parrot:",
            ":+1:",
            ":a-b_c:",
        ] {
            assert!(Emoji::parse(good).is_some(), "{good}");
        }
        let long_code = format!(":{}:", "a".repeat(31));
        let zalgo = format!("a{}", "\u{301}".repeat(40));
        for bad in [
            "",
            "👍👍",
            "ab",
            " ",
            "::",
            ":a b:",
            ":<script>:",
            "\u{7}",
            &long_code,
            &zalgo,
        ] {
            assert!(Emoji::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn reactions_add_once_remove_and_cap_distinct_emoji() {
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let up = Emoji::parse("👍").unwrap();
        let mut r = Vec::new();
        assert_eq!(apply(&mut r, &up, &ann, true), Ok(true));
        assert_eq!(apply(&mut r, &up, &ann, true), Ok(false));
        assert_eq!(apply(&mut r, &up, &bob, true), Ok(true));
        assert_eq!(r[0].user_ids, [ann.clone(), bob.clone()]);
        assert_eq!(apply(&mut r, &up, &ann, false), Ok(true));
        assert_eq!(apply(&mut r, &up, &ann, false), Ok(false));
        assert_eq!(apply(&mut r, &up, &bob, false), Ok(true));
        assert!(r.is_empty());
        for i in 0..MAX_REACTIONS {
            let e = Emoji::parse(&format!(":e{i}:")).unwrap();
            apply(&mut r, &e, &ann, true).unwrap();
        }
        assert_eq!(apply(&mut r, &up, &ann, true), Err(ReactionError::TooMany));
        // An emoji already there still takes more people.
        let first = Emoji::parse(":e0:").unwrap();
        assert_eq!(apply(&mut r, &first, &bob, true), Ok(true));
    }
}
