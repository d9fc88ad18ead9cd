//! Accounts of the messenger API: an id and a display name.

use super::UserId;

/// Longest account name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub name: AccountName,
}

/// A trimmed, non-blank display name of bounded length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNameError {
    Blank,
    TooLong,
    ControlCharacter,
}

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self, AccountNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AccountNameError::Blank);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(AccountNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(AccountNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(AccountName::parse(" Jada ").unwrap().as_str(), "Jada");
        assert_eq!(AccountName::parse("   "), Err(AccountNameError::Blank));
        assert_eq!(
            AccountName::parse(&"x".repeat(101)),
            Err(AccountNameError::TooLong)
        );
        assert_eq!(
            AccountName::parse("a\0b"),
            Err(AccountNameError::ControlCharacter)
        );
    }
}
