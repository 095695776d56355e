-- POST /api/auth/refreshtoken without rotation, as the tutorial's clients do: they keep
-- presenting the first refresh token they were given. Args are the file of tokens; every
-- thread cycles through all of them (with one token, every connection re-sends that one).

local requests, next_index = {}, 0

function init(args)
  local headers = { ["content-type"] = "application/json" }
  for token in io.lines(args[1]) do
    if #token > 0 then
      local body = '{"refreshToken":"' .. token .. '"}'
      table.insert(requests, wrk.format("POST", "/api/auth/refreshtoken", headers, body))
    end
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
