-- statuses.lua: status counting for the wrk scripts beside it (if-none-match.lua,
-- range.lua); not a wrk script itself. wrk counts only statuses above 399 ("Non-2xx or
-- 3xx responses"), so it cannot tell a 304 or 206 from a 200; these hooks can.
--
--   local statuses = dofile(<this directory> .. "statuses.lua")
--   statuses.install()   -- defines the global setup(), response() and done()
--
-- Every response's status is counted in its wrk thread (a global per status, plus the
-- list of statuses seen, since wrk's thread:get() copies strings and numbers reliably);
-- done() adds them up over the threads and prints one line after wrk's report:
--
--   statuses: 304=812345
--
-- (several statuses space-separated, in increasing order). bench/compare-http reads it.
-- Defining response() makes wrk hand each response's headers and body to Lua, which
-- costs wrk (not the server) some CPU per response.

local M = {}

function M.install()
   local threads = {}
   local keys = {}   -- per thread: status -> name of its counter global

   function setup(thread)
      table.insert(threads, thread)
   end

   status_seen = ""

   function response(status, headers, body)
      local key = keys[status]
      if key == nil then
         key = "status_" .. status
         keys[status] = key
         _G[key] = 0
         status_seen = status_seen .. " " .. status
      end
      _G[key] = _G[key] + 1
   end

   function done(summary, latency, requests)
      local total = {}
      for _, t in ipairs(threads) do
         for s in string.gmatch(t:get("status_seen") or "", "%d+") do
            local n = tonumber(s)
            total[n] = (total[n] or 0) + (t:get("status_" .. s) or 0)
         end
      end
      local order = {}
      for s in pairs(total) do
         table.insert(order, s)
      end
      table.sort(order)
      local parts = {}
      for _, s in ipairs(order) do
         table.insert(parts, string.format("%d=%d", s, total[s]))
      end
      io.write("statuses: " .. table.concat(parts, " ") .. "\n")
   end
end

return M
