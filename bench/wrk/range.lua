-- range.lua: wrk script for single byte-range GETs. Requests carry
-- "Range: bytes=N-(N+CHUNK-1)" for the path in wrk's URL, N stepping through the
-- CHUNK-aligned chunks of a SIZE-byte file (0, CHUNK, 2*CHUNK, ... then from 0 again,
-- one step per request in each wrk thread), so every response should be a 206 with
-- CHUNK bytes.
--
--   wrk -t1 -c100 -d5s --latency -s bench/wrk/range.lua \
--       http://127.0.0.1:8080/static/range.bin -- 1048576 65536
--
-- Arguments after --: SIZE (bytes in the file, default 1 MiB), CHUNK (bytes per range,
-- default 64 KiB; SIZE must be a multiple of it), and "fixed" to ask for the first chunk
-- every time instead of stepping. Statuses are counted (see statuses.lua) and printed
-- after wrk's report as "statuses: 206=N"; wrk itself counts 206s and 200s alike.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "statuses.lua").install()

local requests = {}
local next_one = 1

local function whole(arg, default, what)
   if arg == nil then
      return default
   end
   local n = tonumber(arg)
   if n == nil or n < 1 or n ~= math.floor(n) then
      error("range.lua: " .. what .. " must be a whole number of at least 1, got " .. tostring(arg))
   end
   return n
end

function init(args)
   local size = whole(args[1], 1048576, "SIZE")
   local chunk = whole(args[2], 65536, "CHUNK")
   if size % chunk ~= 0 then
      error("range.lua: SIZE " .. size .. " is not a multiple of CHUNK " .. chunk)
   end
   local count = size / chunk
   if args[3] == "fixed" then
      count = 1
   elseif args[3] ~= nil then
      error("range.lua: the third argument can only be \"fixed\", got " .. tostring(args[3]))
   end
   -- wrk.init() has set wrk.headers["Host"] from the URL before it calls init().
   for i = 0, count - 1 do
      local first = i * chunk
      local headers = { ["Host"] = wrk.headers["Host"],
                        ["Range"] = string.format("bytes=%d-%d", first, first + chunk - 1) }
      requests[i + 1] = wrk.format("GET", wrk.path, headers)
   end
end

function request()
   local r = requests[next_one]
   next_one = next_one % #requests + 1
   return r
end
