//! Accounts of the messenger API: `{id, name}`. In `open` mode ids are decimal strings assigned
//! in creation order (`"1"`, `"2"`, ...), as in the messenger README; in `jwt` mode an account's
//! id is its owner's token subject, so nobody claims ids an identity provider issues later.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::extract::{Json, Path, Query};
use crate::{
    domain::{
        Account, AccountName, Actor, UserId,
        account::{AccountNameError, MAX_NAME_CHARS},
    },
    error::{ApiError, Result},
    http::error::ErrorBody,
    state::AppState,
    views::AccountView,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
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

/// Most accounts one page of the list holds.
pub const MAX_ACCOUNTS_PAGE: usize = 100;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountList {
    accounts: Vec<AccountView>,
    /// Only on paged lists: where the next page starts, `null` on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    next_cursor: Option<Option<String>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Accounts per page, 1 to 100.
    limit: Option<usize>,
    /// The previous page's `nextCursor`.
    cursor: Option<String>,
}

/// `GET /api/accounts` → `{accounts: Account[]}`, in creation order. Paged with `?limit=`
/// (at most 100) and `?cursor=` from the previous page's `nextCursor`; in `jwt` mode always
/// paged. An `open`-mode request without either gets every account, as in the README.
#[utoipa::path(get, path = "/api/accounts", tag = "accounts",
    params(ListQuery),
    responses(
        (status = 200, description = "Accounts in creation order", body = AccountList),
        (status = 400, description = "`invalid_cursor`, `invalid_query`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<ListQuery>,
) -> Result<Json<AccountList>> {
    let paged = actor.verified || query.limit.is_some() || query.cursor.is_some();
    if !paged {
        let accounts = state.store.accounts(None, usize::MAX).await?;
        return Ok(Json(AccountList {
            accounts: accounts.iter().map(AccountView::from).collect(),
            next_cursor: None,
        }));
    }
    let limit = query
        .limit
        .unwrap_or(MAX_ACCOUNTS_PAGE)
        .clamp(1, MAX_ACCOUNTS_PAGE);
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than the page: whether there is a next one.
    let mut accounts = state.store.accounts(after.as_ref(), limit + 1).await?;
    let more = accounts.len() > limit;
    accounts.truncate(limit);
    let next = more
        .then(|| accounts.last().map(|a| encode_cursor(&a.id)))
        .flatten();
    Ok(Json(AccountList {
        accounts: accounts.iter().map(AccountView::from).collect(),
        next_cursor: Some(next),
    }))
}

fn encode_cursor(after: &UserId) -> String {
    URL_SAFE_NO_PAD.encode(after.as_str())
}

fn decode_cursor(raw: &str) -> Result<UserId> {
    let invalid =
        || ApiError::bad_request("invalid_cursor", "the cursor is not one this list gave");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    UserId::parse(&id).map_err(|_| invalid())
}

#[derive(Deserialize, ToSchema)]
struct CreateAccount {
    /// 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// `POST /api/accounts {name}` → 201 Account. In `jwt` mode the account is the caller's own:
/// 201 when it is created, 200 when an existing one is renamed.
#[utoipa::path(post, path = "/api/accounts", tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, description = "Created", body = AccountView),
        (status = 200, description = "`jwt` mode: the caller's account, renamed", body = AccountView),
        (status = 400, description = "`invalid_json`, `invalid_name`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
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
    if actor.verified {
        let account = Account {
            id: actor.user,
            name,
        };
        let created = state.store.save_account(account.clone()).await?;
        return Ok((
            super::created_or_found(created),
            Json(AccountView::from(&account)),
        ));
    }
    let account = state.store.create_account(name).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// `GET /api/account/:account_id` → Account, or 404 `account_not_found`.
#[utoipa::path(get, path = "/api/account/{account_id}", tag = "accounts",
    params(("account_id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 403, description = "`not_your_account` (`jwt` mode)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = "default", description = "Any other error, `{error, message?}`: 401 `unauthorized`, `invalid_token`, `token_expired` (`jwt` mode); 413 `payload_too_large`; 415 `unsupported_media_type`; 503 `store_unavailable` with `Retry-After`; 507 `insufficient_storage`", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<AccountView>> {
    let account = account(&state, &id).await?;
    require_own(&actor, &account.id)?;
    Ok(Json(AccountView::from(&account)))
}
