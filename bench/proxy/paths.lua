-- wrk script for bench/proxy.ts: 1024 distinct paths, so the hash spreads keys over the backends.
-- Arguments after `--`: a path prefix (/t, /k, /m: the backend's tiny, 1 KB or 64 KB answer), a method, body bytes.
local paths = {}
local method = "GET"
local body = nil
local headers = {}
function init(args)
  local prefix = args[1] or "/t"
  method = args[2] or "GET"
  local size = tonumber(args[3] or "0")
  if size > 0 then
    body = string.rep("x", size)
    headers["Content-Type"] = "application/octet-stream"
  end
  for i = 1, 1024 do paths[i] = prefix .. "/users/" .. i end
end
local n = 0
request = function()
  n = n % 1024 + 1
  return wrk.format(method, paths[n], headers, body)
end
