//! `POST {auth.path}/register` (only with `auth.registration = true`; 404 otherwise): a new
//! user without roles, its password hashed with argon2id, its `user_id` generated (never the
//! username, so no one can pick the identity their account gets). The name is kept
//! NFKC-casefolded; 409 `username_taken` when that folded name exists, decided by one atomic
//! store write.

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use std::net::SocketAddr;

use super::lockout::Attempt;
use super::Deps;
use super::{json, read_json, users, AuthCenter};
use crate::auth::session::UserRecord;
use crate::error::GatewayError;
use crate::http::body::{Body, Inbound};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    username: String,
    password: String,
}

pub(super) async fn register(
    center: &AuthCenter,
    gw: &Deps,
    peer: SocketAddr,
    req: Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let body: RegisterRequest = read_json(gw, req, false).await?;
    let Some(name) = users::fold_username(&body.username) else {
        return Err(GatewayError::BadRequest("bad_username"));
    };
    if !users::acceptable_password(&body.password) {
        return Err(GatewayError::BadRequest("bad_password"));
    }
    let store = gw.auth.store();
    // A 409 tells whether a name exists: registrations count on the client address's login
    // limit like failed logins (20 per window, then 429), so names cannot be enumerated here
    // faster than by logging in. A registration that succeeds takes its attempt back.
    let attempt = Attempt::new(None, &super::lockout_address(peer));
    attempt.count(store).await?;
    // Cheap early answer; the write below is what decides.
    if store.get_user(&name).await?.is_some() {
        return Err(GatewayError::UserExists);
    }
    let password_hash = match center.hasher.hash(body.password).await {
        Ok(h) => h,
        Err(e) => {
            attempt.take_back(store).await?;
            return Err(e);
        }
    };
    let user = UserRecord {
        user_id: users::new_user_id(),
        password_hash,
        roles: Vec::new(),
    };
    if !store.put_user(&name, &user, false).await? {
        return Err(GatewayError::UserExists);
    }
    attempt.take_back(store).await?;
    tracing::info!(user_id = %user.user_id, "registered");
    Ok(json(
        StatusCode::CREATED,
        &json!({ "user_id": user.user_id, "username": name }),
    ))
}
