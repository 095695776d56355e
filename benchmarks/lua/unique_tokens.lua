-- GET with a different access token on every request: args are the token file and the
-- number of wrk threads; each thread cycles through its own share of the file.

local requests, next_index = {}, 0

function init(args)
  for _, token in ipairs(share_of_lines(args[1], thread_index, tonumber(args[2]))) do
    table.insert(requests, wrk.format("GET", nil, { ["x-access-token"] = token }))
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
