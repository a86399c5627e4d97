-- One wrk target for bench/peers.py (which fills in @...@). Through a proxy the request
-- target is absolute-form (GET http://127.0.0.1:PORT/small); direct it is origin-form.
wrk.method = "GET"
wrk.path = "@PATH@"
wrk.headers["Host"] = "@HOST@"
@EXTRA_HEADERS@
-- One JSON line that peers.py reads: counts, bytes, and latency percentiles in microseconds.
-- errors.status is wrk's count of responses with status >= 400.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
