//! Accounts of the messenger API: `{id, name}`. Ids are decimal strings assigned in creation
//! order (`"1"`, `"2"`, ...), as in the messenger README.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use crate::{
    domain::{
        Account, AccountName, Actor, UserId,
        account::{AccountNameError, MAX_NAME_CHARS},
    },
    error::{ApiError, Result},
    state::AppState,
    views::AccountView,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/accounts", get(list).post(create))
        .route("/api/account/{account_id}", get(show))
}

/// A path account id that is not even well-formed names no account.
pub async fn account(state: &AppState, raw: &str) -> Result<Account> {
    let id = UserId::parse(raw).map_err(|_| ApiError::NotFound("account_not_found"))?;
    Ok(state.store.account(&id).await?)
}

/// In `jwt` mode, accounts API paths name the caller's own account.
pub fn require_own(actor: &Actor, account: &UserId) -> Result<()> {
    if actor.verified && *account != actor.user {
        return Err(ApiError::Forbidden("not_your_account"));
    }
    Ok(())
}

#[derive(Serialize)]
struct AccountList {
    accounts: Vec<AccountView>,
}

/// `GET /api/accounts` → `{accounts: Account[]}`, in creation order.
async fn list(State(state): State<AppState>, _actor: Actor) -> Result<Json<AccountList>> {
    let accounts = state.store.accounts().await?;
    Ok(Json(AccountList {
        accounts: accounts.iter().map(AccountView::from).collect(),
    }))
}

#[derive(Deserialize)]
struct CreateAccount {
    name: String,
}

/// `POST /api/accounts {name}` → 201 Account.
async fn create(
    State(state): State<AppState>,
    _actor: Actor,
    Json(req): Json<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>)> {
    let name = AccountName::parse(&req.name).map_err(|e| match e {
        AccountNameError::Blank => ApiError::bad_request("invalid_name", "name is blank"),
        AccountNameError::TooLong => ApiError::bad_request(
            "invalid_name",
            format!("name is longer than {MAX_NAME_CHARS} characters"),
        ),
        AccountNameError::ControlCharacter => {
            ApiError::bad_request("invalid_name", "name contains control characters")
        }
    })?;
    let account = state.store.create_account(name).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// `GET /api/account/:account_id` → Account, or 404 `account_not_found`.
async fn show(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<AccountView>> {
    let account = account(&state, &id).await?;
    require_own(&actor, &account.id)?;
    Ok(Json(AccountView::from(&account)))
}
