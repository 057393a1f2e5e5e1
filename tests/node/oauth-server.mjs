// A real OAuth 2.0 / OIDC authorization server for end-to-end tests: oauth2-mock-server with an
// RS256 key generated at start, on 127.0.0.1 and an OS-chosen port.
//
//   node oauth-server.mjs
//
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` once serving, then runs until killed.
// Tokens are issued by the server's own /token endpoint. To shape user tokens, tests use the
// password grant and pass extra claims as a JSON object in the form field `test_claims`
// (merged into the token before signing); `aud` is taken from the form as the server does for
// client_credentials. Every token gets `azp` = the authenticated client id.
// Browser sign-in (authorization code): the headless /authorize approves at once; the browser
// names who signs in with `test_user` (a real IdP shows a login page), and the ID and access
// tokens issued for that code carry `sub` = that user.
import { OAuth2Server } from "oauth2-mock-server";

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
const signedIn = new Map(); // authorization code → user
server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const code = redirect.url.searchParams.get("code");
  if (code && req.query.test_user) signedIn.set(code, req.query.test_user);
});
server.service.on("beforeTokenSigning", (token, req) => {
  const body = req.body ?? {};
  if (body.grant_type === "authorization_code" && signedIn.has(body.code)) {
    token.payload.sub = signedIn.get(body.code);
  }
  const basic = (req.headers.authorization ?? "").replace(/^Basic /, "");
  const clientId = basic
    ? decodeURIComponent(Buffer.from(basic, "base64").toString().split(":")[0])
    : body.client_id;
  if (clientId) token.payload.azp = clientId;
  // `aud` as the mock server takes it, or `audience` as many providers (and Gatehouse) send it.
  if (body.aud) token.payload.aud = body.aud;
  if (body.audience) token.payload.aud = body.audience;
  // RFC 8707 resource indicator (sent by MCP clients) becomes the audience.
  if (body.resource) token.payload.aud = body.resource;
  if (body.test_claims) Object.assign(token.payload, JSON.parse(body.test_claims));
  if (body.grant_type === "client_credentials" && clientId) {
    token.payload.client_id = clientId;
    token.payload.sub = clientId;
  }
});
// Test control: add a fresh signing key, as an IdP does when it rotates: the old key stays
// published and new tokens are signed with the keys in turn.
server.service.addRoute("POST", "/test/rotate", async (_req, res) => {
  const key = await server.issuer.keys.generate("RS256");
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ kid: key.kid }));
});
await server.start(0, "127.0.0.1");
console.log(JSON.stringify({ issuer: server.issuer.url }));
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
