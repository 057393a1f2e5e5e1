// The users' IdP and a security token service (RFC 8693) for the token-exchange tests: a real
// `oidc-provider` (certified OpenID Provider) on 127.0.0.1 and an OS-chosen port, with two grant
// handlers registered the way oidc-provider documents (`provider.registerGrantType`):
//
// - `password` (RFC 6749 §4.3) for the agent's public client `claude-code`: a user signs in
//   (`alice`/`alice-password`, `bob`, `carol`) and gets a JWT access token for `resource`
//   (the gateway), signed with the provider's keys; `sub` = the user, `client_id` = the agent.
// - `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693) for the gateway's confidential
//   client `gatehouse-gateway` (client_secret_basic or _post, checked by oidc-provider): the
//   subject token must be a JWT access token this provider issued (signature, issuer, expiry);
//   an actor token, when sent, must verify against this provider or the `--actor-issuer` (e.g. a
//   Kubernetes ServiceAccount issuer). The issued JWT access token has `sub` = the subject's
//   user, `aud` = the requested `audience`/`resource`, the requested `scope`, and
//   `act: {sub, iss}` naming the actor (nesting any `act` the subject token carried). Invalid
//   subject or actor tokens get `invalid_request`, as RFC 8693 §2.2.2 requires.
//
//   node token-exchange-server.mjs [--actor-issuer URL] [--ttl SECONDS]
//
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` once serving, then runs until killed.
// GET /test/exchanges lists every token exchange it granted (`sub`, `act`, `aud`, `scope`).
import http from "node:http";
import Provider, { errors } from "oidc-provider";
import * as jose from "jose";

// oidc-provider prints notices with console.info; stdout carries only the ready line (the test
// stops reading it after that line).
console.info = console.error;
console.log = console.error;

const PASSWORD = "password";
const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";
const JWT = "urn:ietf:params:oauth:token-type:jwt";
const USERS = new Set(["alice", "bob", "carol"]);

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const actorIssuer = arg("--actor-issuer");
const ttl = Number(arg("--ttl") ?? 600);

const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
const kid = "sts-1";
const signingKey = { ...(await jose.exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
const ownKeys = jose.createLocalJWKSet({
  keys: [{ ...(await jose.exportJWK(publicKey)), kid, alg: "RS256", use: "sig" }],
});

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

// Claims beyond oidc-provider's own (`act`), per issued token.
const extraClaims = new WeakMap();
const exchanges = [];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "claude-code",
      token_endpoint_auth_method: "none",
      grant_types: [PASSWORD],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: "gatehouse-gateway",
      client_secret: "gateway-exchange-secret",
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: [EXCHANGE],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  features: { devInteractions: { enabled: false } },
  extraTokenClaims: (_ctx, token) => extraClaims.get(token),
  ttl: { AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl },
});

/// A JWT access token for `accountId`, issued to the requesting client, for `audiences`.
async function issue(ctx, { accountId, audiences, scope, gty, extra }) {
  const token = new provider.AccessToken({
    accountId,
    client: ctx.oidc.client,
    scope: scope || undefined,
    gty,
    resourceServer: new provider.ResourceServer(audiences[0], {
      accessTokenFormat: "jwt",
      accessTokenTTL: ttl,
      scope,
    }),
  });
  if (audiences.length > 1) token.aud = audiences;
  if (extra) extraClaims.set(token, extra);
  return {
    access_token: await token.save(),
    token_type: "Bearer",
    expires_in: token.expiration,
    ...(scope ? { scope } : {}),
  };
}

// RFC 6749 §4.3: the users' sign-in.
provider.registerGrantType(
  PASSWORD,
  async (ctx) => {
    const { username, password, resource, scope } = ctx.oidc.params;
    if (!USERS.has(username) || password !== `${username}-password`) {
      throw new errors.InvalidGrant("wrong username or password");
    }
    if (!resource) throw new errors.InvalidTarget("resource (the gateway's URL) is required");
    ctx.body = await issue(ctx, { accountId: username, audiences: [resource], scope, gty: PASSWORD });
  },
  ["username", "password", "resource", "scope"],
);

/// Verify a presented token; RFC 8693 §2.2.2 answers every unusable one with invalid_request.
async function verified(what, token, type, trusted) {
  if (!token) throw new errors.InvalidRequest(`${what} is missing`);
  if (type !== ACCESS_TOKEN && type !== JWT) {
    throw new errors.InvalidRequest(`${what}_type ${type ?? "(missing)"} is not supported`);
  }
  for (const { iss, keys } of trusted) {
    try {
      return (await jose.jwtVerify(token, keys, { issuer: iss })).payload;
    } catch {
      // Try the next trusted issuer.
    }
  }
  throw new errors.InvalidRequest(`${what} is invalid (signature, issuer or expiry)`);
}

let actorKeys;
async function actorIssuers() {
  const trusted = [{ iss: issuer, keys: ownKeys }];
  if (actorIssuer) {
    if (!actorKeys) {
      const doc = await (await fetch(`${actorIssuer}/.well-known/openid-configuration`)).json();
      actorKeys = jose.createRemoteJWKSet(new URL(doc.jwks_uri));
    }
    trusted.push({ iss: actorIssuer, keys: actorKeys });
  }
  return trusted;
}

// RFC 8693 token exchange.
provider.registerGrantType(
  EXCHANGE,
  async (ctx) => {
    const p = ctx.oidc.params;
    if (p.requested_token_type && p.requested_token_type !== ACCESS_TOKEN) {
      throw new errors.InvalidRequest(`requested_token_type ${p.requested_token_type} is not supported`);
    }
    const subject = await verified("subject_token", p.subject_token, p.subject_token_type, [
      { iss: issuer, keys: ownKeys },
    ]);
    if (!USERS.has(subject.sub)) throw new errors.InvalidRequest("subject_token does not name a user");
    let act;
    if (p.actor_token) {
      const actor = await verified("actor_token", p.actor_token, p.actor_token_type, await actorIssuers());
      act = { sub: actor.sub, iss: actor.iss, ...(subject.act ? { act: subject.act } : {}) };
    } else if (p.actor_token_type) {
      throw new errors.InvalidRequest("actor_token_type without actor_token");
    }
    const audiences = [p.audience, p.resource].filter(Boolean);
    if (audiences.length === 0) throw new errors.InvalidTarget("audience or resource is required");
    const body = await issue(ctx, {
      accountId: subject.sub,
      audiences,
      scope: p.scope,
      gty: EXCHANGE,
      extra: act ? { act } : undefined,
    });
    exchanges.push({ sub: subject.sub, act: act ?? null, aud: audiences, scope: p.scope ?? null });
    ctx.body = { ...body, issued_token_type: ACCESS_TOKEN };
  },
  [
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "audience",
    "resource",
    "scope",
  ],
);

const callback = provider.callback();
server.on("request", (req, res) => {
  if (req.method === "GET" && req.url === "/test/exchanges") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(exchanges));
    return;
  }
  callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
