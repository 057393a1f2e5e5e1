// The "SaaS" authorization server of the per-user consent tests: oauth2-mock-server (real
// authorization code + PKCE S256 verification, headless /authorize that approves at once),
// plus what a real provider has and the mock lacks, added through its hooks:
//
// - users: the browser names who signs in with `test_user` on /authorize (a real provider would
//   show a login page); tokens issued from that code, and refreshed from them, carry `sub` = user;
// - confidential client: the token endpoint requires HTTP basic `saas-client:saas-client-secret`
//   for the authorization_code and refresh_token grants;
// - exact redirect URI: the code exchange must send the redirect_uri /authorize was given;
// - rotating refresh tokens: each refresh token works once (reuse → invalid_grant);
// - revocation: POST /test/revoke `user=…` revokes that user's grants (refresh → invalid_grant)
//   until the user consents again;
// - POST /test/ttl `seconds=…` sets `expires_in` of tokens issued from now on;
// - GET /test/issued lists every code, access token and refresh token issued (log-capture test),
//   and how many requests asked for RFC 8414 metadata (`metadataRequests`: the mock publishes
//   only OpenID Connect discovery, so every discovery asks here first and gets a 404).
//
//   node saas-server.mjs   → prints {"issuer": "http://127.0.0.1:PORT"} once serving
import { OAuth2Server } from "oauth2-mock-server";
import { randomUUID } from "node:crypto";

const CLIENT = "Basic " + Buffer.from("saas-client:saas-client-secret").toString("base64");
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

const codes = new Map(); // code → { user, redirectUri }
const liveRefresh = new Map(); // refresh token → user (each usable once)
const revoked = new Set();
const issued = { codes: [], access: [], refresh: [] };
let ttl = 3600;
let refreshes = 0;
let metadataRequests = 0;

server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const code = redirect.url.searchParams.get("code");
  if (!code) return;
  codes.set(code, { user: req.query.test_user ?? "anonymous", redirectUri: req.query.redirect_uri });
  issued.codes.push(code);
});

// Who the token request is for (before signing and before responding).
const userOf = (body) =>
  body.grant_type === "authorization_code"
    ? codes.get(body.code)?.user
    : body.grant_type === "refresh_token"
      ? liveRefresh.get(body.refresh_token)
      : undefined;

server.service.on("beforeTokenSigning", (token, req) => {
  const user = userOf(req.body ?? {});
  if (user) token.payload.sub = user;
  token.payload.jti = randomUUID();
});

server.service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  if (body.grant_type !== "authorization_code" && body.grant_type !== "refresh_token") return;
  const refuse = (status, error, description) => {
    response.statusCode = status;
    response.body = { error, error_description: description };
  };
  if (req.headers.authorization !== CLIENT) return refuse(401, "invalid_client", "bad client credentials");
  const user = userOf(body);
  if (body.grant_type === "authorization_code") {
    const c = codes.get(body.code);
    codes.delete(body.code);
    if (!c) return refuse(400, "invalid_grant", "unknown or used code");
    if (c.redirectUri !== body.redirect_uri) return refuse(400, "invalid_grant", "redirect_uri mismatch");
    revoked.delete(user);
  } else {
    if (!user) return refuse(400, "invalid_grant", "unknown, used or rotated refresh token");
    liveRefresh.delete(body.refresh_token);
    if (revoked.has(user)) return refuse(400, "invalid_grant", "the grant was revoked");
    refreshes += 1;
  }
  const refresh = randomUUID();
  response.body.refresh_token = refresh;
  response.body.expires_in = ttl;
  liveRefresh.set(refresh, user);
  issued.access.push(response.body.access_token);
  issued.refresh.push(refresh);
});

server.service.addRoute("POST", "/test/revoke", (req, res) => {
  revoked.add(req.body.user);
  res.writeHead(204).end();
});
server.service.addRoute("POST", "/test/ttl", (req, res) => {
  ttl = Number(req.body.seconds);
  res.writeHead(204).end();
});
server.service.addRoute("GET", "/test/issued", (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ ...issued, refreshes, metadataRequests }));
});
server.service.addRoute("GET", "/.well-known/oauth-authorization-server", (_req, res) => {
  metadataRequests += 1;
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: "not_found" }));
});

await server.start(0, "127.0.0.1");
console.log(JSON.stringify({ issuer: server.issuer.url }));
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
