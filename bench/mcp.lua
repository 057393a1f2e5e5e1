-- wrk script for bench/run: POSTs an MCP `tools/call` (JSON-RPC, no session) to wrk's URL.
--
-- Environment (all optional):
--   BENCH_KEYS      file with one API key per line; requests cycle through them in
--                   `X-API-Key` (each wrk thread starts at a different offset). Sent to every
--                   system so all three parse the same request bytes; nginx ignores it.
--   BENCH_KEY_HEADER the header the keys go in (default `X-API-Key`; `Authorization` for
--                   the OIDC system, whose key file holds `Bearer <JWT>` lines).
--   BENCH_AUTH      an extra `Authorization` value (the "direct" client holds the upstream
--                   token itself; the proxies inject it instead).
--   BENCH_DELAY_MS  pause each connection this long between responses and its next request
--                   (paced load for the latency phase; see bench/run).
-- `done` prints one machine-readable line: `BENCH requests=… duration_us=… rps=… p50_us=…
-- p90_us=… p99_us=… p999_us=… max_us=… errors=…`.

local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
  .. '"params":{"name":"echo","arguments":{"text":"hello"}}}'
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local thread_no = 0
local threads = {}

function setup(thread)
  thread:set("bench_thread", thread_no)
  thread_no = thread_no + 1
  table.insert(threads, thread)
end

local requests = {}
local n, i = 0, 0

function init(args)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2025-06-18",
  }
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  local key_header = os.getenv("BENCH_KEY_HEADER")
  if not key_header or key_header == "" then key_header = "X-API-Key" end
  local keys_file = os.getenv("BENCH_KEYS")
  if keys_file and keys_file ~= "" then
    for key in io.lines(keys_file) do
      if key ~= "" then
        headers[key_header] = key
        table.insert(requests, wrk.format("POST", nil, headers, body))
      end
    end
  end
  if #requests == 0 then
    table.insert(requests, wrk.format("POST", nil, headers, body))
  end
  n = #requests
  i = ((bench_thread or 0) * 7919) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests_)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, errors))
end
