// An OAuth-protected MCP server, the upstream of the discovery tests: the official TypeScript
// SDK (Streamable HTTP, stateless) behind a bearer-token check, publishing RFC 9728
// protected-resource metadata that names its authorization server, as a SaaS MCP server does.
//
//   node protected-mcp-server.mjs AUTHORIZATION_SERVER_ISSUER
//
// - GET /.well-known/oauth-protected-resource/mcp (the path-suffixed form only) →
//   {"resource": "<this>/mcp", "authorization_servers": [ISSUER]}
// - /mcp without a token the authorization server signed (checked against its JWKS, issuer
//   ISSUER) → 401 with `WWW-Authenticate: Bearer resource_metadata="…"`
// - tool `whoami` → {"authorization": <the header it received>, "sub": <the token's subject>}
// - GET /test/hits → how many requests reached the metadata and /mcp (tests that expect no
//   request at all read this)
//
// Prints {"url": "http://127.0.0.1:PORT/mcp"} once serving.
import http from "node:http";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const issuer = process.argv[2];
if (!issuer) {
  console.error("usage: protected-mcp-server.mjs AUTHORIZATION_SERVER_ISSUER");
  process.exit(2);
}
const jwks = createRemoteJWKSet(new URL(`${issuer.replace(/\/$/, "")}/jwks`));
const hits = { metadata: 0, mcp: 0 };
let base = "";

const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};

const readBody = async (req) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString();
  return text ? JSON.parse(text) : undefined;
};

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, base).pathname;
    if (path === "/test/hits") return json(res, 200, hits);
    if (path.startsWith("/.well-known/")) {
      hits.metadata += 1;
      if (path !== "/.well-known/oauth-protected-resource/mcp") return json(res, 404, { error: "not_found" });
      return json(res, 200, {
        resource: `${base}/mcp`,
        authorization_servers: [issuer],
        bearer_methods_supported: ["header"],
      });
    }
    if (path !== "/mcp") return json(res, 404, { error: "not_found" });
    hits.mcp += 1;
    const challenge = (error) => ({
      "www-authenticate": `Bearer ${error ? `error="${error}", ` : ""}resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
    });
    const authorization = req.headers.authorization ?? "";
    if (!authorization.startsWith("Bearer ")) return json(res, 401, { error: "unauthorized" }, challenge());
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(authorization.slice(7), jwks, { issuer }));
    } catch {
      return json(res, 401, { error: "invalid_token" }, challenge("invalid_token"));
    }
    const mcp = new McpServer({ name: "protected-saas", version: "1.0.0" });
    mcp.registerTool(
      "whoami",
      { description: "Show the Authorization header and token subject this server received" },
      async () => ({
        content: [{ type: "text", text: JSON.stringify({ authorization, sub: claims.sub }) }],
      }),
    );
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on("close", () => {
      transport.close();
      mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, req.method === "POST" ? await readBody(req) : undefined);
  } catch (e) {
    if (!res.headersSent) json(res, 500, { error: String(e) });
  }
});

server.listen(0, "127.0.0.1", () => {
  base = `http://127.0.0.1:${server.address().port}`;
  console.log(JSON.stringify({ url: `${base}/mcp` }));
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
