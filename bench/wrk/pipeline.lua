-- pipeline.lua: wrk script for HTTP/1.1 pipelining. Every write carries DEPTH GET
-- requests back to back for the path in wrk's URL, each with a Host header and
-- "Connection: keep-alive"; wrk reads the DEPTH responses before it writes again.
--
--   wrk -t1 -c100 -d5s --latency -s bench/wrk/pipeline.lua http://127.0.0.1:8080/index.html -- 16
--
-- DEPTH is the first script argument (after wrk's "--"); default 16. wrk counts each
-- response as one request, so Requests/sec is requests, not batches. wrk times latency
-- once per batch (its write to the last of its responses), so it grows with DEPTH, and
-- its upper percentiles can print as 0 (compare-http shows those as n/a).

local depth = 16
local batch = nil

function init(args)
   if args[1] ~= nil then
      depth = tonumber(args[1])
      if depth == nil or depth < 1 or depth ~= math.floor(depth) then
         error("pipeline.lua: depth must be a whole number of at least 1, got " .. tostring(args[1]))
      end
   end
   -- wrk.init() has set wrk.headers["Host"] from the URL before it calls init().
   local headers = { ["Host"] = wrk.headers["Host"], ["Connection"] = "keep-alive" }
   local one = wrk.format("GET", wrk.path, headers)
   batch = string.rep(one, depth)
end

function request()
   return batch
end
