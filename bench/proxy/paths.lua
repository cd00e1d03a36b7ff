-- wrk script for bench/proxy.ts: 1024 distinct paths, so the hash spreads keys over the backends.
local paths = {}
for i = 1, 1024 do paths[i] = "/users/" .. i end
local n = 0
request = function()
  n = n % 1024 + 1
  return wrk.format("GET", paths[n])
end
