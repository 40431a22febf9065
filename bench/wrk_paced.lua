-- Usage: BENCH_DELAY_MS=10 wrk -s bench/wrk_paced.lua URL   (make bench-memory)
-- Each connection waits BENCH_DELAY_MS between its requests: connections / delay bounds
-- the rate (a paced load, not wrk's flat-out one). Prints the same BENCH_JSON summary.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
delay = function()
  return delay_ms
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
