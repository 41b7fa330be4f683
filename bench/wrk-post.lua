-- wrk's script for the bench's loads (bench/load.ts): POST one body, read from a file, with its
-- content type; at the end, one line the bench parses. Latencies are in microseconds.
-- With VECWAL_BENCH_UNIQUE_HEADER set, every request carries that header with a value of its own
-- (an Idempotency-Key, or for the load compared with it a header the service ignores, so that
-- both pay the same for building each request).
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("VECWAL_BENCH_CONTENT_TYPE")
local file = assert(io.open(os.getenv("VECWAL_BENCH_BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

local unique_header = os.getenv("VECWAL_BENCH_UNIQUE_HEADER")
if unique_header ~= nil and unique_header ~= "" then
  -- Unique across the rounds of a run, each a wrk process of its own: a random prefix per process.
  local random = assert(io.open("/dev/urandom", "rb"))
  local prefix = random:read(8):gsub(".", function(c) return string.format("%02x", c:byte()) end) .. "-"
  random:close()
  local counter = 0
  -- wrk.format takes the headers whole, in place of wrk.headers: the same ones, and this one more.
  local headers = {}
  request = function()
    for name, value in pairs(wrk.headers) do headers[name] = value end
    counter = counter + 1
    headers[unique_header] = prefix .. counter
    return wrk.format(nil, nil, headers, nil)
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("vecwal-bench requests=%d micros=%d non2xx=%d socket_errors=%d timeouts=%d p50=%d p99=%d\n",
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
