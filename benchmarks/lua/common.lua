-- Shared by every scenario (the driver prepends it to the scenario's script): counts the
-- answers outside 200-299 in each thread and prints one JSON line of results at the end.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

non2xx = 0

function count(status)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function response(status, headers, body)
  count(status)
end

-- The lines of `path`, keeping those of thread `index` out of `total` (round robin).
function share_of_lines(path, index, total)
  local mine, n = {}, 0
  for line in io.lines(path) do
    n = n + 1
    if (n - 1) % total == index - 1 and #line > 0 then
      table.insert(mine, line)
    end
  end
  return mine
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    '\nWRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, errors.connect + errors.read + errors.write + errors.timeout))
end
