//! `jwt` mode over REST: tokens are required and verified, the token's subject is the caller,
//! and only members see or post to a thread.

use crate::helpers::{SECRET, TestApp, now, spawn_app_with, token, token_with};
use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde_json::json;

async fn jwt_app() -> TestApp {
    spawn_app_with(|c| c.jwt_secret = Some(SECRET.into())).await
}

async fn as_user(app: &TestApp, user: &str, req: reqwest::RequestBuilder) -> crate::helpers::Reply {
    let _ = app;
    app.send(req.bearer_auth(token(user))).await
}

#[tokio::test]
async fn requests_without_a_good_token_are_401() {
    let app = jwt_app().await;
    let url = app.url("/api/threads");
    let body = json!({"memberIds": ["ann", "bob"]});
    let cases = [
        (app.http.post(&url).json(&body), "unauthorized"),
        (
            app.http
                .post(&url)
                .json(&body)
                .header("authorization", "Basic abc"),
            "unauthorized",
        ),
        (
            app.http.post(&url).json(&body).bearer_auth("not.a.jwt"),
            "invalid_token",
        ),
        (
            app.http.post(&url).json(&body).bearer_auth(token_with(
                json!({"sub": "ann", "exp": now() + 600}),
                "wrong-secret",
            )),
            "invalid_token",
        ),
        (
            app.http.post(&url).json(&body).bearer_auth(token_with(
                json!({"sub": "ann", "exp": now() - 600}),
                SECRET,
            )),
            "token_expired",
        ),
        (
            app.http.post(&url).json(&body).bearer_auth(token_with(
                json!({"sub": "ann", "exp": now() + 600, "nbf": now() + 300}),
                SECRET,
            )),
            "invalid_token",
        ),
        (
            app.http
                .post(&url)
                .json(&body)
                .bearer_auth(token_with(json!({"exp": now() + 600}), SECRET)),
            "invalid_token",
        ),
        (
            app.http
                .post(&url)
                .json(&body)
                .bearer_auth(token_with(json!({"sub": "ann"}), SECRET)),
            "invalid_token",
        ),
        // `me` is the stub's anonymous caller, limited by address only: no token may claim it.
        (
            app.http.post(&url).json(&body).bearer_auth(token("me")),
            "invalid_token",
        ),
    ];
    for (i, (req, code)) in cases.into_iter().enumerate() {
        let reply = app.send(req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "case {i}");
        assert_eq!(reply.error_code(), code, "case {i}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer", "case {i}");
    }
    for path in [
        "/api/threads/x",
        "/api/threads/x/messages",
        "/api/accounts",
        "/api/account/1",
        "/api/files/x/status",
    ] {
        assert_eq!(
            app.get(path).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        app.get("/healthz").await.status,
        StatusCode::OK,
        "health needs no token"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.jwt_issuer = Some("https://id.example".into());
        c.jwt_audience = Some("threadline".into());
    })
    .await;
    let good =
        json!({"sub": "ann", "exp": now() + 600, "iss": "https://id.example", "aud": "threadline"});
    let reply = app
        .send(
            app.http
                .get(app.url("/api/accounts"))
                .bearer_auth(token_with(good.clone(), SECRET)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    for bad in [
        json!({"iss": "https://evil.example"}),
        json!({"aud": "other"}),
    ] {
        let mut claims = good.clone();
        claims
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let reply = app
            .send(
                app.http
                    .get(app.url("/api/accounts"))
                    .bearer_auth(token_with(claims, SECRET)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

#[tokio::test]
async fn the_token_subject_is_the_author_and_only_members_get_in() {
    let app = jwt_app().await;
    let created = as_user(
        &app,
        "ann",
        app.http
            .post(app.url("/api/threads"))
            .json(&json!({"memberIds": ["ann", "bob"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let thread = created.body["id"].as_str().unwrap().to_owned();

    // Creating a thread one is not in is refused.
    let for_others = as_user(
        &app,
        "eve",
        app.http
            .post(app.url("/api/threads"))
            .json(&json!({"memberIds": ["ann", "bob"]})),
    )
    .await;
    assert_eq!(
        (for_others.status, for_others.error_code()),
        (StatusCode::FORBIDDEN, "not_a_member")
    );

    // X-User-Id is ignored: the token names the author.
    let posted = as_user(
        &app,
        "bob",
        app.http
            .post(app.url(&format!("/api/threads/{thread}/messages")))
            .header("x-user-id", "ann")
            .json(&json!({"body": "hi"})),
    )
    .await;
    assert_eq!(posted.status, StatusCode::CREATED);
    assert_eq!(posted.body["message"]["authorId"], "bob");

    for (method, path) in [
        ("GET", format!("/api/threads/{thread}")),
        ("GET", format!("/api/threads/{thread}/messages")),
        ("POST", format!("/api/threads/{thread}/messages")),
    ] {
        let req = match method {
            "GET" => app.http.get(app.url(&path)),
            _ => app
                .http
                .post(app.url(&path))
                .json(&json!({"body": "let me in"})),
        };
        let member = as_user(&app, "ann", req.try_clone().unwrap()).await;
        assert!(member.status.is_success(), "{method} {path}: {member:?}");
        let stranger = as_user(&app, "eve", req).await;
        assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(stranger.error_code(), "not_a_member");
    }
}

#[tokio::test]
async fn accounts_api_paths_must_name_the_callers_account() {
    let app = jwt_app().await;
    let a = as_user(
        &app,
        "ann",
        app.http
            .post(app.url("/api/accounts"))
            .json(&json!({"name": "A"})),
    )
    .await;
    let b = as_user(
        &app,
        "bob",
        app.http
            .post(app.url("/api/accounts"))
            .json(&json!({"name": "B"})),
    )
    .await;
    let (a, b) = (
        a.body["id"].as_str().unwrap().to_owned(),
        b.body["id"].as_str().unwrap().to_owned(),
    );
    let conv = as_user(
        &app,
        &a,
        app.http
            .post(app.url(&format!("/api/account/{a}/conversations?with={b}"))),
    )
    .await;
    assert_eq!(conv.status, StatusCode::CREATED);
    let conv = conv.body["id"].as_str().unwrap().to_owned();

    for path in [
        format!("/api/account/{a}"),
        format!("/api/account/{a}/conversations"),
        format!("/api/account/{a}/conversation/{conv}"),
        format!("/api/account/{a}/conversation/{conv}/messages"),
        format!("/api/{a}/conversation"),
    ] {
        assert_eq!(
            as_user(&app, &a, app.http.get(app.url(&path))).await.status,
            StatusCode::OK,
            "{path}"
        );
        let other = as_user(&app, &b, app.http.get(app.url(&path))).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(other.error_code(), "not_your_account");
    }
    let post = app
        .http
        .post(app.url(&format!("/api/account/{a}/conversation/{conv}/messages")))
        .json(&json!({"text": "hi"}));
    assert_eq!(
        as_user(&app, &b, post.try_clone().unwrap()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(as_user(&app, &a, post).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn files_are_visible_to_the_uploader_and_members_of_referencing_threads() {
    let app = jwt_app().await;
    let form = Form::new().part("file", Part::bytes(b"secret".to_vec()).file_name("s.txt"));
    let up = as_user(
        &app,
        "ann",
        app.http.post(app.url("/api/files")).multipart(form),
    )
    .await;
    assert_eq!(up.status, StatusCode::CREATED);
    let file = up.body["id"].as_str().unwrap().to_owned();
    let status_path = format!("/api/files/{file}/status");
    for _ in 0..200 {
        if as_user(&app, "ann", app.http.get(app.url(&status_path)))
            .await
            .body["status"]
            == "ready"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let visible = |user: &'static str| {
        let app = &app;
        let status_path = status_path.clone();
        let file = file.clone();
        async move {
            let s = as_user(app, user, app.http.get(app.url(&status_path)))
                .await
                .status;
            let d = as_user(
                app,
                user,
                app.http.get(app.url(&format!("/api/files/{file}"))),
            )
            .await
            .status;
            (s, d)
        }
    };
    assert_eq!(
        visible("ann").await,
        (StatusCode::OK, StatusCode::OK),
        "uploader"
    );
    // Unshared, a file answers exactly like an unknown id: no existence oracle.
    assert_eq!(
        visible("bob").await,
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "not yet shared"
    );

    // Knowing the id is not enough to share it into one's own thread.
    let own = as_user(
        &app,
        "eve",
        app.http
            .post(app.url("/api/threads"))
            .json(&json!({"memberIds": ["eve", "mal"]})),
    )
    .await;
    let own = own.body["id"].as_str().unwrap().to_owned();
    let stolen = as_user(
        &app,
        "eve",
        app.http
            .post(app.url(&format!("/api/threads/{own}/messages")))
            .json(&json!({"fileIds": [file]})),
    )
    .await;
    assert_eq!(
        (stolen.status, stolen.error_code()),
        (StatusCode::BAD_REQUEST, "unknown_file")
    );

    let thread = as_user(
        &app,
        "ann",
        app.http
            .post(app.url("/api/threads"))
            .json(&json!({"memberIds": ["ann", "bob"]})),
    )
    .await;
    let thread = thread.body["id"].as_str().unwrap().to_owned();
    let shared = as_user(
        &app,
        "ann",
        app.http
            .post(app.url(&format!("/api/threads/{thread}/messages")))
            .json(&json!({"fileIds": [file]})),
    )
    .await;
    assert_eq!(shared.status, StatusCode::CREATED);
    assert_eq!(
        visible("bob").await,
        (StatusCode::OK, StatusCode::OK),
        "member of a referencing thread"
    );
    assert_eq!(
        visible("eve").await,
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "stranger"
    );
}

/// Generates a key pair with the `openssl` command: (PKCS#8 private key, public key), PEM.
fn key_pair(dir: &std::path::Path, kind: &str) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.join(format!("{kind}.key"));
    let public = dir.join(format!("{kind}.pub"));
    let run = |args: &[&str]| {
        // Quietly: key generation prints progress dots otherwise, noise in the test log.
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let private_s = private.to_str().unwrap();
    match kind {
        "ec" => run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            private_s,
        ]),
        _ => run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            private_s,
        ]),
    }
    run(&[
        "pkey",
        "-in",
        private_s,
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(&private).unwrap(), public)
}

#[tokio::test]
async fn public_key_tokens_es256_and_rs256() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let dir = tempfile::tempdir().unwrap();
    for (kind, algorithm) in [("ec", Algorithm::ES256), ("rsa", Algorithm::RS256)] {
        let (private, public) = key_pair(dir.path(), kind);
        let app = spawn_app_with(|c| c.jwt_public_key = Some(public.clone())).await;
        let key = match kind {
            "ec" => EncodingKey::from_ec_pem(&private).unwrap(),
            _ => EncodingKey::from_rsa_pem(&private).unwrap(),
        };
        let signed = encode(
            &Header::new(algorithm),
            &json!({"sub": "ann", "exp": now() + 600}),
            &key,
        )
        .unwrap();
        let ok = app
            .send(app.http.get(app.url("/api/accounts")).bearer_auth(&signed))
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{kind}");
        // An HS256 token made with the public key as secret (the classic confusion) is refused.
        let forged = token_with(
            json!({"sub": "ann", "exp": now() + 600}),
            &String::from_utf8_lossy(&std::fs::read(&public).unwrap()),
        );
        let refused = app
            .send(app.http.get(app.url("/api/accounts")).bearer_auth(forged))
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{kind}");
    }
}
