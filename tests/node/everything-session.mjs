// A scripted MCP session with the official TypeScript SDK client, used by the end-to-end tests
// to compare talking to @modelcontextprotocol/server-everything directly and through Gatehouse.
//
//   node everything-session.mjs URL [--header "Name: value"]...
//
// Prints one JSON document with what a user of the session would notice (tool names, results,
// resources, prompts, progress notifications, sampling and elicitation round trips). Exit code 1
// with the error on stderr when the session fails.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, ...rest] = process.argv.slice(2);
if (!url) {
  console.error("usage: everything-session.mjs URL [--header 'Name: value']...");
  process.exit(2);
}
const headers = {};
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === "--header") {
    const [name, ...value] = rest[++i].split(":");
    headers[name.trim()] = value.join(":").trim();
  }
}

const client = new Client(
  { name: "gatehouse-e2e", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {} } },
);
const seen = { sampling: [], elicitation: [] };
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  seen.sampling.push(req.params.messages.map((m) => m.content.text ?? "").join(" "));
  return {
    model: "e2e-model",
    role: "assistant",
    content: { type: "text", text: "sampled by the test client" },
  };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  seen.elicitation.push(req.params.message);
  return { action: "accept", content: { name: "Ada Lovelace", check: true } };
});

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers },
});

const text = (result) =>
  (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

try {
  await client.connect(transport);
  const out = {};
  out.serverName = client.getServerVersion()?.name;
  out.hasSession = typeof transport.sessionId === "string" && transport.sessionId.length > 0;
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  out.echo = text(await client.callTool({ name: "echo", arguments: { message: "hello gatehouse" } }));
  out.sum = text(await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } }));
  const resources = (await client.listResources()).resources;
  out.resourceCount = resources.length;
  out.firstResource = resources[0]?.uri ?? null;
  if (resources[0]) {
    const read = await client.readResource({ uri: resources[0].uri });
    out.firstResourceContents = read.contents.length;
  }
  out.prompts = (await client.listPrompts()).prompts.map((p) => p.name).sort();
  const prompt = await client.getPrompt({ name: "simple-prompt", arguments: {} });
  out.promptMessages = prompt.messages.length;
  let progress = 0;
  const long = await client.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: () => { progress++; } },
  );
  out.longRunning = text(long).length > 0;
  out.progressNotifications = progress;
  out.sampling = text(
    await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "say hi", maxTokens: 20 } }),
  ).includes("sampled by the test client");
  out.samplingRequests = seen.sampling.length;
  out.elicitation = text(
    await client.callTool({ name: "trigger-elicitation-request", arguments: {} }),
  ).includes("Ada Lovelace");
  out.elicitationRequests = seen.elicitation.length;
  await transport.terminateSession();
  await client.close();
  console.log(JSON.stringify(out, null, 2));
} catch (err) {
  console.error(`session failed: ${err?.stack ?? err}`);
  process.exit(1);
}
