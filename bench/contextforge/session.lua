-- wrk script for bench/peer-contextforge: one MCP session per connection, then `tools/call`.
--
-- Run wrk with as many threads as connections (-t N -c N): wrk keeps one Lua state per thread
-- and does not say which connection a request is for, so one connection per thread is what
-- binds a session to its connection (ContextForge with several workers keeps sessions in the
-- worker that accepted the connection).
--
-- Per connection: `initialize` (the `Mcp-Session-Id` of its response is kept) →
-- `notifications/initialized` → `tools/call` TOOL {"text": TEXT} in a loop with the session id.
-- A tools/call answered 404 (session unknown) starts the handshake again.
--
-- Environment:
--   BENCH_TOOL      tool name (ContextForge prefixes federated tools with the gateway's slug)
--   BENCH_TEXT      the echo argument; a response counts as correct when its body contains it
--                   and no JSON-RPC "error" member
--   BENCH_AUTH      `Authorization` value sent on every request (optional)
--   BENCH_DELAY_MS  pause between a response and the connection's next request (paced load)
-- `done` prints one line: `BENCH requests=… duration_us=… rps=… p50_us=… p90_us=… p99_us=…
-- p999_us=… max_us=… errors=… calls=… ok=… bad=… handshakes=…` (rps counts every request; the
-- handshakes are 2 per connection, plus re-handshakes, and are reported).

local tool = os.getenv("BENCH_TOOL") or "echo"
local text = os.getenv("BENCH_TEXT") or "hello"
local auth = os.getenv("BENCH_AUTH") or ""
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local phase = 0 -- 0: initialize, 1: notifications/initialized, 2: tools/call
local session = nil
local next_id = 0
calls, ok, bad, handshakes, sample = 0, 0, 0, 0, ""

local function headers()
  local h = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2025-06-18",
  }
  if auth ~= "" then h["Authorization"] = auth end
  if session then h["Mcp-Session-Id"] = session end
  return h
end

function request()
  next_id = next_id + 1
  if phase == 0 then
    session = nil
    return wrk.format("POST", nil, headers(), string.format(
      '{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
      .. '"capabilities":{},"clientInfo":{"name":"bench-wrk","version":"1"}}}', next_id))
  elseif phase == 1 then
    return wrk.format("POST", nil, headers(),
      '{"jsonrpc":"2.0","method":"notifications/initialized"}')
  end
  return wrk.format("POST", nil, headers(), string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{"text":"%s"}}}',
    next_id, tool, text))
end

function response(status, hdrs, body)
  if phase == 0 then
    handshakes = handshakes + 1
    for k, v in pairs(hdrs) do
      if string.lower(k) == "mcp-session-id" then session = v end
    end
    if status == 200 then phase = 1 else bad = bad + 1 end
  elseif phase == 1 then
    handshakes = handshakes + 1
    if status >= 200 and status < 300 then phase = 2 else bad = bad + 1; phase = 0 end
  else
    calls = calls + 1
    if status == 200 and body and string.find(body, text, 1, true)
        and not string.find(body, '"error"', 1, true) then
      ok = ok + 1
    else
      bad = bad + 1
      if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 300) end
      if status == 404 or status == 400 then phase = 0 end
    end
  end
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests_)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local c, o, b, h, s = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + (t:get("calls") or 0)
    o = o + (t:get("ok") or 0)
    b = b + (t:get("bad") or 0)
    h = h + (t:get("handshakes") or 0)
    if s == "" then s = t:get("sample") or "" end
  end
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d errors=%d calls=%d ok=%d bad=%d handshakes=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, errors, c, o, b, h))
  if s ~= "" then io.write("BENCH_SAMPLE_BAD " .. string.gsub(s, "\n", "\\n") .. "\n") end
end
