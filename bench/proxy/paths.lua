-- wrk script for bench/proxy.ts: distinct paths (1024 unless told), so the hash spreads keys over the backends.
-- Arguments after `--`: a path prefix (/t, /k, /m: the backend's tiny, 1 KB or 64 KB answer), a method, body bytes,
-- and the number of distinct paths.
local paths = {}
local method = "GET"
local body = nil
local headers = {}
local count = 1024
function init(args)
  local prefix = args[1] or "/t"
  method = args[2] or "GET"
  local size = tonumber(args[3] or "0")
  if size > 0 then
    body = string.rep("x", size)
    headers["Content-Type"] = "application/octet-stream"
  end
  count = tonumber(args[4] or "1024")
  for i = 1, count do paths[i] = prefix .. "/users/" .. i end
end
local n = 0
request = function()
  n = n % count + 1
  return wrk.format(method, paths[n], headers, body)
end
