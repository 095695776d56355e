-- POST /api/auth/refreshtoken with rotation: every request presents a token that the previous
-- answer of its session returned. Args are the file of starting refresh tokens (one session
-- each) and the number of wrk threads. A thread keeps a pool of spendable tokens: a request
-- takes one, its answer puts the successor back, so no token is ever presented twice.

local pool = {}
local headers = { ["content-type"] = "application/json" }

function init(args)
  pool = share_of_lines(args[1], thread_index, tonumber(args[2]))
end

function request()
  -- An empty pool means answers were lost; the placeholder is refused and counted.
  local token = table.remove(pool) or "pool-exhausted"
  local body = '{"refreshToken":"' .. token .. '"}'
  return wrk.format("POST", "/api/auth/refreshtoken", headers, body)
end

function response(status, headers, body)
  count(status)
  if status == 200 then
    local successor = body:match('"refreshToken":"([^"]+)"')
    if successor then
      table.insert(pool, successor)
    end
  end
end
