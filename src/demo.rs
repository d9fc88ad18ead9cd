//! The messenger README's sample world, loaded by `--demo`, so every request the README shows
//! works against a fresh server.
//!
//! Accounts 1 Will Smith, 2 Jada, 3 Jaden, 4 Chris Rock. Conversations `1` (Will, Jada), `2`
//! (Will, Chris Rock) and `5` (Will, Jaden); conversation 5 holds messages `1230`..`1243`.

use crate::{
    domain::{Account, AccountName, Message, MessageId, Thread, ThreadId, Timestamp, UserId},
    store::{Store, StoreError, StoreResult},
};

fn id<T>(parse: fn(&str) -> Result<T, crate::domain::IdError>, raw: &str) -> StoreResult<T> {
    parse(raw).map_err(|_| StoreError::Backend(format!("bad demo id {raw}")))
}

struct DemoMessage {
    id: String,
    author: &'static str,
    text: &'static str,
    ts: i64,
}

pub async fn seed(store: &dyn Store) -> StoreResult<()> {
    // A durable database keeps the demo world across restarts: seed it once.
    if store.account(&id(UserId::parse, "1")?).await.is_ok() {
        return Ok(());
    }
    for (account, name) in [
        ("1", "Will Smith"),
        ("2", "Jada"),
        ("3", "Jaden"),
        ("4", "Chris Rock"),
    ] {
        let name = AccountName::parse(name).map_err(|_| StoreError::Backend("name".into()))?;
        store
            .insert_account(Account {
                id: id(UserId::parse, account)?,
                name,
            })
            .await?;
    }

    let base = 1_612_312_312_312;
    let conversation_five: Vec<DemoMessage> = (1230..=1243)
        .map(|n: i64| DemoMessage {
            id: n.to_string(),
            author: "3",
            text: "You \"rock\"!!!",
            ts: base + 20_000 - (1243 - n) * 1_000,
        })
        .collect();
    let conversations = [
        (
            "1",
            ["1", "2"],
            vec![DemoMessage {
                id: "1000".into(),
                author: "1",
                text: "I love you",
                ts: base,
            }],
        ),
        (
            "2",
            ["1", "4"],
            vec![DemoMessage {
                id: "1001".into(),
                author: "1",
                text: "Don't do that again",
                ts: base,
            }],
        ),
        ("5", ["1", "3"], conversation_five),
    ];
    for (thread_id, members, messages) in conversations {
        let thread_id = id(ThreadId::parse, thread_id)?;
        let created = Timestamp::from_millis(base - 60_000);
        store
            .create_or_resolve_thread(Thread {
                id: thread_id.clone(),
                title: None,
                member_ids: vec![
                    id(UserId::parse, members[0])?,
                    id(UserId::parse, members[1])?,
                ],
                created_at: created,
                updated_at: created,
            })
            .await?;
        for m in messages {
            store
                .append_message(Message {
                    id: id(MessageId::parse, &m.id)?,
                    ..Message::new(
                        thread_id.clone(),
                        id(UserId::parse, m.author)?,
                        m.text.to_owned(),
                        Timestamp::from_millis(m.ts),
                    )
                })
                .await?;
        }
    }
    Ok(())
}
