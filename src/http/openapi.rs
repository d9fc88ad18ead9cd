//! The OpenAPI document's frame: title, the Socket.IO events (as its description, which `/docs`
//! shows first), tags and security schemes. The paths and schemas come from the routes.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "threadline",
        description = include_str!("../../docs/socket-events.md"),
    ),
    tags(
        (name = "threads", description = "The stub's threads API"),
        (name = "messages", description = "A thread's messages: history, post, edit, delete, read position, replies, search"),
        (name = "reactions", description = "Reactions on a message"),
        (name = "files", description = "Uploads, their status, downloads"),
        (name = "accounts", description = "The messenger README's accounts"),
        (name = "conversations", description = "The messenger README's conversations (a conversation is a thread)"),
        (name = "operations", description = "Probes and metrics"),
    ),
    modifiers(&Identity),
)]
pub struct ApiDoc;

/// `jwt` mode: a bearer token; `open` mode: whatever the gateway put in `X-User-Id`. Neither is
/// required by the document: which one applies is the server's configuration.
struct Identity;

impl Modify for Identity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`jwt` mode: the caller's token (`sub` is its user id)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "userId",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-User-Id",
                "`open` mode: the caller, as the gateway in front names it (else `me`)",
            ))),
        );
    }
}
