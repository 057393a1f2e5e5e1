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
//! Pages are `text/plain` (nothing reflected can run), never cached, and sent without a
//! `Referer` so the code in the callback URL does not leak to other sites.

use crate::body::{self, Body};
use crate::credentials::authcode::CONSENT_COOKIE;
use crate::route::CredentialEndpoint;
use crate::state::Snapshot;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

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
        CredentialEndpoint::Consent(link) => start(snapshot, &link),
        CredentialEndpoint::Callback => callback(snapshot, query.unwrap_or(""), headers).await,
    }
}

fn start(snapshot: &Snapshot, link: &str) -> Response<Body> {
    let Some((id, sealed)) = link.split_once('.') else {
        return page(StatusCode::NOT_FOUND, "no such consent link");
    };
    let Some(provider) = snapshot.credentials.consent_provider(id) else {
        return page(
            StatusCode::NOT_FOUND,
            "this consent link names a CredentialProvider this gateway no longer serves",
        );
    };
    match provider.start(sealed) {
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
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == CONSENT_COOKIE)
        .map(|(_, v)| v.to_string())
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
