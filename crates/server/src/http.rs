//! The HTTP side: health, metrics, the REST API (docs/openapi.yaml), the WebSocket signalling
//! endpoint and the embedded web app.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use strowger_sfu::RoomOptions;
use tokio::sync::mpsc;

use crate::auth::{ApiKey, Grants};
use crate::config::Config;
use crate::media::{room_json, MediaHandle, SfuCmd};
use crate::metrics::Metrics;
use crate::signal::hub::HubMsg;
use crate::signal::proto::ProtoError;

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub sip: crate::sip::SipHandle,
    pub cfg: Arc<Config>,
    pub key: Arc<ApiKey>,
    pub hub: mpsc::Sender<HubMsg>,
    pub media: MediaHandle,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// The database (users; the SIP registrar reads HA1s with `store.get_user`).
    pub store: strowger_store::Store,
}

#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/"]
struct Web;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ws", get(ws))
        .route("/sip", get(sip_ws))
        .route("/api/v1/tokens", post(create_token))
        .route("/api/v1/rooms", get(list_rooms).post(create_room))
        .route("/api/v1/rooms/{name}", get(get_room).delete(delete_room))
        .route("/api/v1/presence", get(presence))
        .route("/api/v1/users/{username}/devices", get(user_devices))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{username}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .fallback(get(static_file))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let stats = s.media.ask(|reply| SfuCmd::Stats { reply }).await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(stats.as_ref()),
    )
        .into_response()
}

async fn ws(State(s): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    // Frames a bit over the limit are read and answered with `too_large`; far over, the
    // WebSocket layer refuses them itself.
    let max = s.cfg.signal.max_message_bytes;
    upgrade
        .max_message_size(max * 2)
        .max_frame_size(max * 2)
        .on_upgrade(move |sock| crate::signal::ws::serve(sock, s))
}

/// SIP over WebSocket (RFC 7118): the `sip` subprotocol on `/sip`.
async fn sip_ws(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(crate::https::PeerAddr(peer)): axum::extract::ConnectInfo<
        crate::https::PeerAddr,
    >,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(tp) = s.sip.transports.clone() else {
        return (StatusCode::NOT_FOUND, "SIP is disabled\n").into_response();
    };
    let max = s.cfg.sip.max_message_bytes;
    upgrade
        .protocols(["sip"])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |sock| crate::sip::ws::serve(sock, peer, tp))
}

// ------------------------------------------------------------------ REST API

/// An API error: JSON body `{"error":{"code","message"}}` with the matching status.
pub struct ApiError(StatusCode, ProtoError);

impl From<ProtoError> for ApiError {
    fn from(e: ProtoError) -> Self {
        let status = match e.code {
            "bad_request" | "invalid_sdp" => StatusCode::BAD_REQUEST,
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "forbidden" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            "room_full" => StatusCode::CONFLICT,
            "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.0,
            Json(json!({"error": {"code": self.1.code, "message": self.1.message}})),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer, Basic realm=\"strowger\""),
            );
        }
        r
    }
}

fn err(code: &'static str, msg: impl Into<String>) -> ApiError {
    ProtoError::new(code, msg).into()
}

/// Admin access: HTTP Basic with the API key and secret, or a Bearer token with `grants.admin`.
fn require_admin(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(err(
            "unauthorized",
            "missing Authorization header (Basic api key:secret, or Bearer admin token)",
        ));
    };
    let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        let b = rest;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        if let Some((k, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            if k == s.key.id && s.key.secret_matches(secret) {
                return Ok(());
            }
        }
        s.metrics.auth_failures.inc();
        return Err(err("unauthorized", "invalid API key or secret"));
    }
    if scheme.eq_ignore_ascii_case("Bearer") {
        return match s.key.verify(rest.trim()) {
            Ok(c) if c.grants.admin => Ok(()),
            Ok(_) => Err(err("forbidden", "token lacks the admin grant")),
            Err(e) => {
                tracing::info!(reason = %e, "API token refused");
                s.metrics.auth_failures.inc();
                Err(err("unauthorized", "invalid or expired token"))
            }
        };
    }
    s.metrics.auth_failures.inc();
    Err(err("unauthorized", "unsupported Authorization scheme"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    identity: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

async fn create_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&s, &headers)?;
    let Json(req) = body.map_err(|e| err("bad_request", e.body_text()))?;
    let ttl = req.ttl_secs.unwrap_or(s.cfg.auth.default_ttl_secs);
    if ttl == 0 || ttl > s.cfg.auth.max_ttl_secs {
        return Err(err(
            "bad_request",
            format!("ttlSecs must be between 1 and {}", s.cfg.auth.max_ttl_secs),
        ));
    }
    if let Some(r) = &req.grants.room {
        if r != "*" {
            strowger_sfu::validate_room_name(r).map_err(ProtoError::from)?;
        }
    }
    let token = s
        .key
        .mint(&req.identity, &req.name, req.grants, ttl)
        .map_err(|_| err("bad_request", "identity must be 1-64 characters of letters, digits and ._-@+; name at most 128 characters"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "expiresAt": crate::auth::now_secs() + ttl})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RoomRequest {
    name: String,
    #[serde(default)]
    max_participants: Option<usize>,
    #[serde(default)]
    empty_timeout_secs: Option<u64>,
}

async fn create_room(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<RoomRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&s, &headers)?;
    let Json(req) = body.map_err(|e| err("bad_request", e.body_text()))?;
    let max = req.max_participants.unwrap_or(s.cfg.rooms.max_participants);
    if max == 0 || max > 10_000 {
        return Err(err(
            "bad_request",
            "maxParticipants must be between 1 and 10000",
        ));
    }
    let timeout = req
        .empty_timeout_secs
        .unwrap_or(s.cfg.rooms.empty_timeout_secs);
    if timeout > 7 * 24 * 3600 {
        return Err(err(
            "bad_request",
            "emptyTimeoutSecs must be at most 604800",
        ));
    }
    let options = RoomOptions {
        max_participants: max,
        empty_timeout: Duration::from_secs(timeout),
    };
    let snap = s
        .media
        .ask(|reply| SfuCmd::CreateRoom {
            name: req.name,
            options,
            reply,
        })
        .await?
        .map_err(ProtoError::from)?;
    Ok((StatusCode::CREATED, Json(room_json(&snap))).into_response())
}

async fn list_rooms(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    let rooms = s.media.ask(|reply| SfuCmd::ListRooms { reply }).await?;
    Ok(Json(
        json!({"rooms": rooms.iter().map(room_json).collect::<Vec<_>>()}),
    ))
}

async fn get_room(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    match s
        .media
        .ask(|reply| SfuCmd::GetRoom {
            name: name.clone(),
            reply,
        })
        .await?
    {
        Some(r) => Ok(Json(room_json(&r))),
        None => Err(err("not_found", "no such room")),
    }
}

async fn delete_room(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&s, &headers)?;
    s.media
        .ask(|reply| SfuCmd::CloseRoom {
            name,
            reply: Some(reply),
        })
        .await?
        .map_err(ProtoError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn presence(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.hub
        .try_send(HubMsg::Presence { reply: tx })
        .map_err(|_| err("unavailable", "signalling busy"))?;
    let v = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .map_err(|_| err("unavailable", "signalling did not answer"))?
        .map_err(|_| err("internal", "signalling dropped the request"))?;
    Ok(Json(
        json!({"users": v["users"], "truncated": v["truncated"]}),
    ))
}

// ---------------------------------------------------------------------- users

/// The devices of a user: SIP phones registered now (the registrar's bindings) and the browser
/// sessions signed in with that identity. One registry for both kinds.
async fn user_devices(
    State(s): State<AppState>,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    if s.store.get_user(&username).await?.is_none() {
        return Err(err("not_found", format!("no user '{username}'")));
    }
    let sip = s
        .sip
        .devices(&username)
        .await
        .map_err(|e| err("unavailable", e))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut web = Value::Null;
    if s.hub.try_send(HubMsg::Presence { reply: tx }).is_ok() {
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(5), rx).await {
            web = v["users"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|u| u["identity"] == username.as_str())
                        .cloned()
                })
                .unwrap_or(Value::Null);
        }
    }
    Ok(Json(json!({"username": username, "sip": sip, "web": web})))
}

impl From<strowger_store::StoreError> for ApiError {
    fn from(e: strowger_store::StoreError) -> Self {
        use strowger_store::StoreError as E;
        match e {
            E::Exists(_) => err("conflict", e.to_string()),
            E::NotFound(_) => err("not_found", e.to_string()),
            E::Invalid(_) => err("bad_request", e.to_string()),
            E::Open { .. } | E::Migrate { .. } | E::Db { .. } => {
                tracing::error!(error = %e, "database failure");
                err("internal", "database error (see the server log)")
            }
        }
    }
}

/// A user as the API shows it: never the hashes.
fn user_json(u: &strowger_store::User, realm: &str) -> Value {
    json!({
        "username": u.username,
        "displayName": u.display_name,
        "disabled": u.disabled,
        "createdAt": u.created_at,
        // False after a change of `sip.realm` until the password is set again.
        "passwordValid": u.realm == realm,
    })
}

fn check_username(name: &str) -> Result<(), ApiError> {
    if strowger_store::valid_username(name) {
        Ok(())
    } else {
        Err(err(
            "bad_request",
            format!(
                "invalid username: use 1-{} characters of letters, digits and {}",
                strowger_store::MAX_USERNAME,
                strowger_store::USERNAME_PUNCTUATION
            ),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PageQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u64>,
}

async fn list_users(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    let Query(q) = query.map_err(|e| err("bad_request", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(err("bad_request", "limit must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let users = s.store.list_users(limit, offset).await?;
    let total = s.store.count_users().await?;
    let realm = s.store.realm();
    Ok(Json(json!({
        "users": users.iter().map(|u| user_json(u, realm)).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateUserRequest {
    username: String,
    password: String,
    #[serde(default, alias = "display_name")]
    display_name: String,
}

async fn create_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateUserRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&s, &headers)?;
    let Json(req) = body.map_err(|e| err("bad_request", e.body_text()))?;
    check_username(&req.username)?;
    let u = s
        .store
        .add_user(&req.username, &req.password, &req.display_name)
        .await?;
    tracing::info!(username = %u.username, "user added");
    Ok((StatusCode::CREATED, Json(user_json(&u, s.store.realm()))).into_response())
}

async fn get_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    check_username(&username)?;
    match s.store.get_user(&username).await? {
        Some(u) => Ok(Json(user_json(&u, s.store.realm()))),
        None => Err(err("not_found", format!("no user '{username}'"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateUserRequest {
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "display_name")]
    display_name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn update_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Result<Json<UpdateUserRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&s, &headers)?;
    check_username(&username)?;
    let Json(req) = body.map_err(|e| err("bad_request", e.body_text()))?;
    let update = strowger_store::UserUpdate {
        password: req.password,
        display_name: req.display_name,
        disabled: req.disabled,
    };
    let u = s.store.update_user(&username, &update).await?;
    s.sip.forget_user(&username);
    tracing::info!(
        username = %u.username,
        password_changed = update.password.is_some(),
        "user updated"
    );
    Ok(Json(user_json(&u, s.store.realm())))
}

async fn delete_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&s, &headers)?;
    check_username(&username)?;
    s.store.remove_user(&username).await?;
    s.sip.forget_user(&username);
    tracing::info!(username = %username, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

// --------------------------------------------------------------- static files

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Web::get(path) {
        Some(f) => {
            let mime = mime_for(path);
            Response::builder()
                .header(header::CONTENT_TYPE, mime)
                .header(header::CACHE_CONTROL, "no-cache")
                .header("x-content-type-options", "nosniff")
                .body(Body::from(f.data.into_owned()))
                .expect("valid response")
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn mime_for(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "ts" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}
