// An MCP client that knows only the server URL: the official TypeScript SDK discovers the
// gateway's protected-resource metadata from its 401, the authorization server's metadata from
// that, runs authorization code + PKCE with the RFC 8707 `resource` parameter, and calls tools.
// The "browser" step is headless: the test IdP (oauth2-mock-server) approves at once and
// redirects with the code, which this script reads from the Location header.
//
//   node oauth-client-session.mjs URL CLIENT_ID
//
// Prints `{"tools": [...], "resource": "...", "authorizationServer": "..."}`.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url, clientId] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9/callback"; // never contacted: the code is read headlessly

class HeadlessProvider {
  #tokens;
  #verifier;
  #discovery;
  authorizationUrl;
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "gatehouse-e2e",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return { client_id: clientId }; // pre-registered with the IdP
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(t) {
    this.#tokens = t;
  }
  redirectToAuthorization(u) {
    this.authorizationUrl = u;
  }
  saveCodeVerifier(v) {
    this.#verifier = v;
  }
  codeVerifier() {
    return this.#verifier;
  }
  saveDiscoveryState(s) {
    this.#discovery = s;
  }
  discoveryState() {
    return this.#discovery;
  }
}

const provider = new HeadlessProvider();
const connect = async () => {
  const client = new Client({ name: "gatehouse-oauth-e2e", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
};

try {
  let session;
  try {
    session = await connect();
    throw new Error("the gateway let an unauthenticated client in");
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  // The "user" approves in the browser: the IdP redirects back with a code.
  const approval = await fetch(provider.authorizationUrl, { redirect: "manual" });
  const location = new URL(approval.headers.get("location"));
  const code = location.searchParams.get("code");
  if (!code) throw new Error(`no code in the redirect: ${location}`);
  const { transport: first } = { transport: new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }) };
  await first.finishAuth(code);
  session = await connect();
  const tools = (await session.client.listTools()).tools.map((t) => t.name).sort();
  const echo = await session.client.callTool({ name: "echo", arguments: { text: "via oauth" } });
  await session.client.close();
  const payload = JSON.parse(Buffer.from(provider.tokens().access_token.split(".")[1], "base64url"));
  console.log(
    JSON.stringify({
      tools,
      echo: echo.content?.[0]?.text,
      resource: provider.authorizationUrl.searchParams.get("resource"),
      authorizationServer: provider.discoveryState()?.authorizationServerUrl,
      tokenAudience: payload.aud,
    }),
  );
} catch (err) {
  console.error(`oauth session failed: ${err?.stack ?? err}`);
  process.exit(1);
}
