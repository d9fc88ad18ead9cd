//! Identifier newtypes. Every id that reaches a handler or the store went through `parse`, so
//! the rest of the code never handles a raw client string.

use std::{borrow::Borrow, fmt, sync::Arc};

use serde::{Deserialize, Serialize};

/// Longest id accepted from a client. Generated ids are 36 characters (UUID); imported or demo
/// ids may be shorter. The bound keeps room names and index keys small.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong,
    BadCharacter,
}

fn validate(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    // Ids travel in URL paths, room names and cursors: keep them to URL-safe characters.
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates a client-supplied id.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                validate(raw)?;
                Ok(Self(Arc::from(raw)))
            }

            /// A new, time-ordered id (UUID v7): ids sort in creation order.
            pub fn generate() -> Self {
                Self(Arc::from(uuid::Uuid::now_v7().to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw).map_err(|e| format!("invalid {}: {e:?}", stringify!($name)))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A thread (the accounts API calls it a conversation).
    ThreadId
);
id_type!(
    /// A message.
    MessageId
);
id_type!(
    /// A user: an account id, or any id a trusted gateway names (`X-User-Id`, `memberIds`).
    UserId
);
id_type!(
    /// An uploaded file.
    FileId
);

impl UserId {
    /// The author the stub records when a request names nobody.
    pub fn anonymous() -> Self {
        Self(Arc::from("me"))
    }

    /// Whether this is the stub's anonymous author.
    pub fn is_anonymous(&self) -> bool {
        &*self.0 == "me"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_short_ids() {
        assert!(ThreadId::parse("5").is_ok());
        assert!(ThreadId::parse(&uuid::Uuid::now_v7().to_string()).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        assert_eq!(ThreadId::parse(""), Err(IdError::Empty));
        assert_eq!(ThreadId::parse(&"a".repeat(129)), Err(IdError::TooLong));
        assert_eq!(ThreadId::parse("a b"), Err(IdError::BadCharacter));
        assert_eq!(ThreadId::parse("../etc"), Err(IdError::BadCharacter));
    }

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let a = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MessageId::generate();
        assert!(a < b);
    }
}
