-- wrk script of the benchmark (bench/run.py). The request shape comes from the environment:
--   BENCH_WRK_MODE=none                 no Authorization header
--   BENCH_WRK_MODE=bearer               every request sends BENCH_WRK_TOKEN
--   BENCH_WRK_MODE=tokens               request i of thread t sends line t + i * BENCH_WRK_THREADS
--                                       of BENCH_WRK_TOKENS_FILE: each token once, in order; past
--                                       the end the thread starts again and counts "wrapped"
-- BENCH_WRK_STATUSES=1 also counts the answers by status code (a Lua call per response).
-- done() prints one line, "BENCH_RESULT {json}", with the counters and the exact latency
-- percentiles in microseconds (wrk's --latency table rounds them).

local mode = os.getenv("BENCH_WRK_MODE") or "none"
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

sent = 0
wrapped = 0
local tokens = {}
local position = 1

function init(args)
  if mode == "bearer" then
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_WRK_TOKEN")
  elseif mode == "tokens" then
    local stride = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    local line_number = 0
    for line in io.lines(os.getenv("BENCH_WRK_TOKENS_FILE")) do
      if #line > 0 then
        if line_number % stride == thread_index then
          table.insert(tokens, line)
        end
        line_number = line_number + 1
      end
    end
  end
end

if mode == "tokens" then
  function request()
    local token = tokens[position]
    position = position + 1
    if position > #tokens then
      position = 1
      wrapped = wrapped + 1
    end
    sent = sent + 1
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
  end
end

statuses = {}
if os.getenv("BENCH_WRK_STATUSES") == "1" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_sent, total_wrapped = 0, 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + (thread:get("sent") or 0)
    total_wrapped = total_wrapped + (thread:get("wrapped") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}, '
      .. '"sent": %d, "wrapped": %d, "statuses": {%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    total_sent, total_wrapped, table.concat(parts, ", ")))
end
