//! Browser sign-in before consent (`TrustProvider.oidc.browserLogin`), headless, against the
//! real `oauth2-mock-server` as the users' IdP and as the "SaaS" authorization server.
//!
//! A consent link is made for one user. Without sign-in it is a bearer link: an attacker who
//! asks for consent as themselves and gets a victim to open the link would have the victim's
//! SaaS account connected to the attacker's gateway identity (cross-app OAuth account
//! takeover). With `browserLogin`, the link first signs the browser in at the IdP and only the
//! user it was made for gets through to the SaaS; anyone else connects nothing.

use gatehouse_tests::consent::{
    LOGIN_CLIENT_ID, Setup, connect, elicitation, initialize_error, setup_with_browser_login,
    url_parts::Parts, whoami,
};
use std::collections::BTreeMap;

/// A headless browser: follows nothing by itself, keeps cookies by name.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// One response: status, `Location`, page.
struct Hop {
    status: u16,
    location: String,
    page: String,
}

impl Browser {
    fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// GET `url`, sending every cookie held (paths are all under the gateway's `/oauth/`, the
    /// IdPs ignore them) and keeping those set.
    async fn get(&mut self, url: &str) -> anyhow::Result<Hop> {
        let mut req = self.http.get(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let resp = req.send().await?;
        for c in resp.headers().get_all("set-cookie") {
            let pair = c.to_str()?.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        Ok(Hop {
            status,
            location,
            page: resp.text().await?,
        })
    }

    /// At an IdP's headless `/authorize`: sign in as `user`; returns the redirect back.
    async fn sign_in_at(&mut self, authorize: &str, user: &str) -> anyhow::Result<String> {
        let hop = self.get(&format!("{authorize}&test_user={user}")).await?;
        anyhow::ensure!(
            hop.status == 302,
            "IdP answered {}: {}",
            hop.status,
            hop.page
        );
        Ok(hop.location)
    }
}

/// Alice's consent link, from the `-32042` her first request gets.
async fn alices_link(s: &Setup) -> anyhow::Result<String> {
    let alice = s.token("u-alice", "claude-code").await?;
    Ok(elicitation(&initialize_error(&s.url(), &alice).await?)?.url)
}

#[tokio::test]
async fn a_forwarded_consent_link_connects_nothing_for_another_user() -> anyhow::Result<()> {
    let s = setup_with_browser_login()?;
    let link = alices_link(&s).await?;

    // Mallory opens alice's link: the gateway wants a sign-in first, at the users' IdP.
    let mut mallory = Browser::new();
    let hop = mallory.get(&link).await?;
    assert_eq!(hop.status, 302, "{}", hop.page);
    let authorize = Parts::parse(&hop.location);
    assert_eq!(authorize.base, format!("{}/authorize", s.idp.issuer));
    assert_eq!(authorize.get("client_id"), Some(LOGIN_CLIENT_ID));
    let login_callback = format!("{}/oauth/login/callback", s.public);
    assert_eq!(authorize.get("redirect_uri"), Some(login_callback.as_str()));
    assert_eq!(authorize.get("code_challenge_method"), Some("S256"));
    assert!(authorize.get("nonce").is_some_and(|n| n.len() >= 16));
    assert_eq!(authorize.get("scope"), Some("openid"));

    // She signs in as herself, and is refused before anything reaches the SaaS.
    let back = mallory.sign_in_at(&hop.location, "u-mallory").await?;
    assert!(back.starts_with(&login_callback), "{back}");
    let refused = mallory.get(&back).await?;
    assert_eq!(refused.status, 403, "{}", refused.page);
    assert!(
        refused.page.contains("made for a different user"),
        "{}",
        refused.page
    );
    assert!(s.stored().is_empty(), "nothing is stored");
    assert!(
        s.saas.issued().await?.codes.is_empty(),
        "the SaaS was never asked"
    );

    // Opening the link again in that browser: back to sign-in, never on to the SaaS.
    let again = mallory.get(&link).await?;
    assert_eq!(again.status, 302, "{}", again.page);
    assert!(
        again
            .location
            .starts_with(&format!("{}/authorize", s.idp.issuer)),
        "{}",
        again.location
    );
    assert!(s.saas.issued().await?.codes.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_user_the_link_was_made_for_signs_in_and_consents() -> anyhow::Result<()> {
    let s = setup_with_browser_login()?;
    let link = alices_link(&s).await?;

    let mut alice = Browser::new();
    let hop = alice.get(&link).await?;
    assert_eq!(hop.status, 302, "{}", hop.page);
    let back = alice.sign_in_at(&hop.location, "u-alice").await?;
    let signed_in = alice.get(&back).await?;
    assert_eq!(signed_in.status, 302, "{}", signed_in.page);
    assert_eq!(signed_in.location, link, "back to the consent link");

    // Signed in as the right user: on to the SaaS, then the consent callback.
    let to_saas = alice.get(&link).await?;
    assert_eq!(to_saas.status, 302, "{}", to_saas.page);
    assert!(
        to_saas
            .location
            .starts_with(&format!("{}/authorize", s.saas.url())),
        "{}",
        to_saas.location
    );
    let callback = alice.sign_in_at(&to_saas.location, "alice-at-saas").await?;
    let done = alice.get(&callback).await?;
    assert_eq!(done.status, 200, "{}", done.page);
    assert!(done.page.contains("Connected"), "{}", done.page);
    assert_eq!(s.stored().len(), 1);

    // Her agent now reaches the upstream with her SaaS token.
    let token = s.token("u-alice", "claude-code").await?;
    let client = connect(&s.url(), &token).await?;
    let seen = whoami(&client).await?;
    let issued = s.saas.issued().await?;
    assert_eq!(seen, format!("Bearer {}", issued.access[0]));
    Ok(())
}

#[tokio::test]
async fn a_sign_in_completed_in_another_browser_is_refused() -> anyhow::Result<()> {
    let s = setup_with_browser_login()?;
    let link = alices_link(&s).await?;

    // The attacker signs in as alice's link demands in *their* browser … (login CSRF: they
    // then hand the callback URL, code and state included, to alice's browser)
    let mut attacker = Browser::new();
    let hop = attacker.get(&link).await?;
    let callback = attacker.sign_in_at(&hop.location, "u-alice").await?;

    let mut victim = Browser::new();
    let replayed = victim.get(&callback).await?;
    assert_eq!(replayed.status, 400, "{}", replayed.page);
    assert!(
        replayed.page.contains("another browser"),
        "{}",
        replayed.page
    );
    assert!(
        victim
            .cookies
            .keys()
            .all(|k| !k.starts_with("gatehouse_login_")),
        "no sign-in cookie: {:?}",
        victim.cookies.keys()
    );
    Ok(())
}

#[tokio::test]
async fn a_tampered_sign_in_cookie_counts_as_not_signed_in() -> anyhow::Result<()> {
    let s = setup_with_browser_login()?;
    let link = alices_link(&s).await?;
    let mut alice = Browser::new();
    let hop = alice.get(&link).await?;
    let back = alice.sign_in_at(&hop.location, "u-alice").await?;
    alice.get(&back).await?;
    let name = alice
        .cookies
        .keys()
        .find(|k| k.starts_with("gatehouse_login_"))
        .cloned()
        .expect("a sign-in cookie");
    let value = alice.cookies.get_mut(&name).unwrap();
    let flipped = if value.ends_with('A') { 'B' } else { 'A' };
    value.pop();
    value.push(flipped);
    let hop = alice.get(&link).await?;
    assert_eq!(hop.status, 302);
    assert!(
        hop.location
            .starts_with(&format!("{}/authorize", s.idp.issuer)),
        "back to sign-in, not to the SaaS: {}",
        hop.location
    );
    Ok(())
}
