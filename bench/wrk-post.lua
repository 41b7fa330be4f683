-- wrk's script for the bench's loads (bench/load.ts): POST one body, read from a file, with its
-- content type; at the end, one line the bench parses. Latencies are in microseconds.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("VECWAL_BENCH_CONTENT_TYPE")
local file = assert(io.open(os.getenv("VECWAL_BENCH_BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("vecwal-bench requests=%d micros=%d non2xx=%d socket_errors=%d timeouts=%d p50=%d p99=%d\n",
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
