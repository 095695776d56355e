-- POST /api/auth/signin cycling through users bench-1 .. bench-N: args are N and the password.

local requests, next_index = {}, 0

function init(args)
  local headers = { ["content-type"] = "application/json" }
  for i = 1, tonumber(args[1]) do
    local body = string.format('{"username":"bench-%d","password":"%s"}', i, args[2])
    table.insert(requests, wrk.format("POST", "/api/auth/signin", headers, body))
  end
  next_index = thread_index
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
