//! The browser side of per-user consent and the gateway's public keys: the endpoints
//! [`route::CredentialEndpoint`] names. They are not MCP and carry no bearer token — the consent
//! link and the OAuth `state` are sealed and bound to the user (see
//! [`crate::credentials::authcode`]).
//!
//! - `GET /oauth/consent/<id>.<link>` → `302` to the provider's authorization endpoint (PKCE
//!   S256), with a cookie binding the flow to this browser.
//! - `GET /oauth/callback?code&state` → exchanges the code, stores the user's grant, and says
//!   so in plain text.
//! - `GET /.well-known/jwks.json` → the `signedJwt` providers' public keys.
//!
//! When the user's TrustProvider has `oidc.browserLogin`, a consent link first signs the
//! browser in at that issuer ([`crate::authn::browser_login`]): `GET /oauth/consent/…` →
//! `302` to the issuer (PKCE S256, nonce, a cookie binding the sign-in to this browser) →
//! `GET /oauth/login/callback` verifies the ID token and sets a sealed, provider-bound sign-in
//! cookie (10 minutes) → back to the consent link, which then continues only if the signed-in
//! user is the user the link was made for. A link forwarded to someone else connects nothing.
//!
//! Pages are `text/plain` (nothing reflected can run), never cached, and sent without a
//! `Referer` so the code in the callback URL does not leak to other sites.

use crate::authn::browser_login::{BrowserLogin, LOGIN_CALLBACK_PATH};
use crate::body::{self, Body};
use crate::credentials::authcode::{
    AuthCode, CONSENT_COOKIE, CONSENT_PATH, LINK_TTL, secrets_equal,
};
use crate::route::CredentialEndpoint;
use crate::state::Snapshot;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Purpose of a sealed sign-in `state`.
const LOGIN_STATE: &str = "login-state";
/// Purpose of a sealed sign-in cookie.
const LOGIN_SESSION: &str = "login-session";
/// The cookie binding a started sign-in to its browser.
const LOGIN_STATE_COOKIE: &str = "gatehouse_login_state";

/// What a sign-in's OAuth `state` says (sealed with the consent provider's key).
#[derive(Serialize, Deserialize)]
struct LoginState {
    /// The consent link to return to (`<provider id>.<sealed link>`).
    l: String,
    /// PKCE verifier.
    v: String,
    /// OIDC nonce, checked in the ID token.
    n: String,
    /// Browser binding, also in [`LOGIN_STATE_COOKIE`].
    b: String,
    /// Expiry, unix seconds.
    x: i64,
}

/// What a sign-in cookie says (sealed): who signed in, until when.
#[derive(Serialize, Deserialize)]
struct LoginSession {
    /// `<trust provider>\0<user id>`.
    u: String,
    x: i64,
}

const WRONG_USER: &str = "This consent link was made for a different user than the one signed in here. It was not used and nothing was connected. Only the user who asked for it can use it: retry the request in your own agent to get your own link.";

/// Answer a request for one of the credential endpoints.
pub async fn serve(
    snapshot: &Snapshot,
    endpoint: CredentialEndpoint,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = page(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match endpoint {
        CredentialEndpoint::Jwks => {
            let mut r = Response::new(body::full(snapshot.credentials.jwks().to_string()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        CredentialEndpoint::Consent(link) => start(snapshot, &link, headers).await,
        CredentialEndpoint::Callback => callback(snapshot, query.unwrap_or(""), headers).await,
        CredentialEndpoint::LoginCallback => {
            login_callback(snapshot, query.unwrap_or(""), headers).await
        }
    }
}

async fn start(snapshot: &Snapshot, link: &str, headers: &HeaderMap) -> Response<Body> {
    let Some((id, sealed)) = link.split_once('.') else {
        return page(StatusCode::NOT_FOUND, "no such consent link");
    };
    let Some(provider) = snapshot.credentials.consent_provider(id) else {
        return page(
            StatusCode::NOT_FOUND,
            "this consent link names a CredentialProvider this gateway no longer serves",
        );
    };
    // A live link whose user signs in through the browser: only that user may use it.
    if let Some(user) = provider.link_user(sealed) {
        let trust_provider = user.split('\0').next().unwrap_or_default();
        if let Some(login) = snapshot.authn.browser_login(trust_provider) {
            match signed_in(provider, headers) {
                Some(who) if secrets_equal(&who, &user) => {}
                Some(_) => {
                    tracing::warn!(
                        trust_provider,
                        "a consent link was opened by another signed-in user: refused, nothing connected"
                    );
                    return page(StatusCode::FORBIDDEN, WRONG_USER);
                }
                None => return begin_sign_in(provider, login, link).await,
            }
        }
    }
    match provider.start(snapshot.credentials.http(), sealed).await {
        Ok(s) => {
            let mut r = page(
                StatusCode::FOUND,
                "continue at your provider to authorize the gateway",
            );
            let h = r.headers_mut();
            if let (Ok(loc), Ok(cookie)) = (
                HeaderValue::from_str(&s.location),
                HeaderValue::from_str(&s.cookie),
            ) {
                h.insert(header::LOCATION, loc);
                h.insert(header::SET_COOKIE, cookie);
                r
            } else {
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the provider's authorization URL cannot be sent in a redirect",
                )
            }
        }
        Err(message) => page(StatusCode::BAD_REQUEST, &message),
    }
}

async fn callback(snapshot: &Snapshot, query: &str, headers: &HeaderMap) -> Response<Body> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    let code = zeroize::Zeroizing::new(code.unwrap_or_default());
    if let Some(error) = error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return page(
            StatusCode::BAD_REQUEST,
            &format!(
                "the provider did not authorize the gateway ({error}); retry the request in your agent to try again"
            ),
        );
    }
    let Some((id, sealed)) = state.as_deref().and_then(|s| s.split_once('.')) else {
        return page(
            StatusCode::BAD_REQUEST,
            "this is not an authorization response the gateway asked for",
        );
    };
    if code.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "the authorization response has no code",
        );
    }
    let Some(provider) = snapshot.credentials.consent_provider(id) else {
        return page(
            StatusCode::NOT_FOUND,
            "this authorization response names a CredentialProvider this gateway no longer serves",
        );
    };
    let cookie = consent_cookie(headers);
    let creds = &snapshot.credentials;
    match provider
        .callback(
            creds.grants(),
            creds.http(),
            &code,
            sealed,
            cookie.as_deref(),
        )
        .await
    {
        Ok(()) => {
            let mut r = page(
                StatusCode::OK,
                "Connected. The gateway can now reach this service for you, through every agent you are allowed to use. Return to your agent and retry.",
            );
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "gatehouse_consent=; Path=/oauth/callback; Max-Age=0; HttpOnly; SameSite=Lax",
                ),
            );
            r
        }
        Err(message) => {
            tracing::warn!(reason = %message, "consent callback refused");
            page(StatusCode::BAD_REQUEST, &message)
        }
    }
}

/// The consent cookie's value, if the browser sent it.
fn consent_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, CONSENT_COOKIE)
}

/// A cookie's value, if the browser sent it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

// === browser sign-in ===

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The sign-in cookie of consent provider `id` (each provider's cookie opens only with its key).
fn login_cookie_name(provider: &AuthCode) -> String {
    format!("gatehouse_login_{}", provider.id())
}

fn secure_attr(provider: &AuthCode) -> &'static str {
    if provider.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// Who this browser signed in as, for consent links of `provider`, if still valid.
fn signed_in(provider: &AuthCode, headers: &HeaderMap) -> Option<String> {
    let sealed = cookie(headers, &login_cookie_name(provider))?;
    let plain = provider.open_for(LOGIN_SESSION, &sealed)?;
    let session: LoginSession = serde_json::from_slice(&plain).ok()?;
    (session.x >= now()).then_some(session.u)
}

fn random_token(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(v)
}

/// Send the browser to sign in before it may use consent link `link`.
async fn begin_sign_in(provider: &AuthCode, login: &BrowserLogin, link: &str) -> Response<Body> {
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = LoginState {
        l: link.to_string(),
        v: verifier,
        n: random_token(16),
        b: random_token(16),
        x: now() + LINK_TTL,
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&state).expect("serializes"));
    let sealed = format!(
        "{}.{}",
        provider.id(),
        provider.seal_for(LOGIN_STATE, &plain)
    );
    let redirect_uri = format!("{}{LOGIN_CALLBACK_PATH}", provider.public_url());
    let location = match login
        .authorization_url(&redirect_uri, &sealed, &challenge, &state.n)
        .await
    {
        Ok(l) => l,
        Err(message) => {
            tracing::warn!(reason = %message, "browser sign-in cannot start");
            return page(StatusCode::SERVICE_UNAVAILABLE, &message);
        }
    };
    let binding = format!(
        "{LOGIN_STATE_COOKIE}={}; Path={LOGIN_CALLBACK_PATH}; Max-Age={LINK_TTL}; HttpOnly; SameSite=Lax{}",
        state.b,
        secure_attr(provider)
    );
    let mut r = page(
        StatusCode::FOUND,
        "sign in first: this link only works for the user it was made for",
    );
    match (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&binding),
    ) {
        (Ok(loc), Ok(cookie)) => {
            r.headers_mut().insert(header::LOCATION, loc);
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        _ => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the sign-in URL cannot be sent in a redirect",
        ),
    }
}

/// `GET /oauth/login/callback`: finish a sign-in and return to the consent link.
async fn login_callback(snapshot: &Snapshot, query: &str, headers: &HeaderMap) -> Response<Body> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(zeroize::Zeroizing::new(v.into_owned())),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(error) = error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return page(
            StatusCode::BAD_REQUEST,
            &format!("sign-in was not completed ({error}); open the consent link again to retry"),
        );
    }
    let not_ours =
        "this is not a sign-in the gateway started, or it has expired; open the consent link again";
    let Some((id, sealed)) = state.as_deref().and_then(|s| s.split_once('.')) else {
        return page(StatusCode::BAD_REQUEST, not_ours);
    };
    let Some(provider) = snapshot.credentials.consent_provider(id) else {
        return page(StatusCode::NOT_FOUND, not_ours);
    };
    let Some(state) = provider
        .open_for(LOGIN_STATE, sealed)
        .and_then(|p| serde_json::from_slice::<LoginState>(&p).ok())
        .filter(|s| s.x >= now())
    else {
        return page(StatusCode::BAD_REQUEST, not_ours);
    };
    match cookie(headers, LOGIN_STATE_COOKIE) {
        Some(b) if secrets_equal(&b, &state.b) => {}
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "this sign-in was started in another browser; open the consent link again here",
            );
        }
    }
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "the sign-in response has no code");
    };
    let Some(user) = state
        .l
        .split_once('.')
        .and_then(|(_, link)| provider.link_user(link))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "this consent link is invalid or has expired; retry the request in your agent for a new one",
        );
    };
    let trust_provider = user.split('\0').next().unwrap_or_default();
    let Some(login) = snapshot.authn.browser_login(trust_provider) else {
        return page(
            StatusCode::NOT_FOUND,
            "browser sign-in is no longer configured for this user's TrustProvider; open the consent link again",
        );
    };
    let redirect_uri = format!("{}{LOGIN_CALLBACK_PATH}", provider.public_url());
    let signed = match login
        .sign_in(
            snapshot.credentials.http(),
            &code,
            &state.v,
            &redirect_uri,
            &state.n,
            u64::try_from(now()).unwrap_or_default(),
        )
        .await
    {
        Ok(u) => format!("{}\0{}", u.provider, u.id),
        Err(message) => {
            tracing::warn!(reason = %message, "browser sign-in refused");
            return page(StatusCode::BAD_REQUEST, &message);
        }
    };
    let secure = secure_attr(provider);
    let clear_binding = format!(
        "{LOGIN_STATE_COOKIE}=; Path={LOGIN_CALLBACK_PATH}; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    );
    if !secrets_equal(&signed, &user) {
        tracing::warn!(
            trust_provider,
            "a consent link was signed into by another user: refused, nothing connected"
        );
        let mut r = page(StatusCode::FORBIDDEN, WRONG_USER);
        if let Ok(v) = HeaderValue::from_str(&clear_binding) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        return r;
    }
    let session = LoginSession {
        u: signed,
        x: now() + LINK_TTL,
    };
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&session).expect("serializes"));
    let session_cookie = format!(
        "{}={}; Path=/oauth/; Max-Age={LINK_TTL}; HttpOnly; SameSite=Lax{secure}",
        login_cookie_name(provider),
        provider.seal_for(LOGIN_SESSION, &plain)
    );
    let back = format!("{}{CONSENT_PATH}{}", provider.public_url(), state.l);
    let mut r = page(StatusCode::FOUND, "signed in: continuing to the consent");
    let h = r.headers_mut();
    for (name, value) in [
        (header::SET_COOKIE, session_cookie.as_str()),
        (header::SET_COOKIE, clear_binding.as_str()),
        (header::LOCATION, back.as_str()),
    ] {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                h.append(name, v);
            }
            Err(_) => {
                return page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the sign-in cannot be completed in a redirect",
                );
            }
        }
    }
    r
}

fn page(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(body::full(format!("{text}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_consent=xyz"),
        );
        assert_eq!(consent_cookie(&h).as_deref(), Some("xyz"));
        assert_eq!(consent_cookie(&HeaderMap::new()), None);
    }
}
