-- POST /api/auth/signup with a new username and email on every request: args are a prefix
-- unique to the run and the password. Names are <prefix>-<thread>-<n>, so no two collide.

local headers = { ["content-type"] = "application/json" }
local prefix, password, n = "", "", 0

function init(args)
  prefix, password = args[1], args[2]
end

function request()
  n = n + 1
  local name = string.format("%s-%d-%d", prefix, thread_index, n)
  local body = string.format(
    '{"username":"%s","email":"%s@example.com","password":"%s"}', name, name, password)
  return wrk.format("POST", "/api/auth/signup", headers, body)
end
