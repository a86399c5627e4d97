-- wrk through a forward proxy with Basic sign-in (bench/logins_bench.py fills in @...@).
-- Absolute-form GET of the origin's /small; every wrk thread signs in as its own user (the
-- users' "name:password" in base64, in turn): each of a thread's connections sends that
-- thread's Proxy-Authorization on every request, as a browser does once it has signed in.
-- AUTH_USERS empty: no Proxy-Authorization (hallpass without logins).
local users = {@AUTH_USERS@}
local count = 0

function setup(thread)
  count = count + 1
  if #users > 0 then
    thread:set("auth", users[(count - 1) % #users + 1])
  end
end

function init(args)
  wrk.method = "GET"
  wrk.path = "@PATH@"
  wrk.headers["Host"] = "@HOST@"
  if auth then
    wrk.headers["Proxy-Authorization"] = "Basic " .. auth
  end
  @EXTRA_HEADERS@
end

-- The same JSON line as configs/wrk.lua, which peers.parse_wrk reads.
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
