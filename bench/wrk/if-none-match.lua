-- if-none-match.lua: wrk script for conditional GETs. Every request carries
-- "If-None-Match: ETAG" for the path in wrk's URL, so a server that knows the file's
-- entity-tag answers 304 Not Modified, with no body.
--
--   wrk -t1 -c100 -d5s --latency -s bench/wrk/if-none-match.lua \
--       http://127.0.0.1:8080/static/index.html -- '"6552c3a5-d"'
--
-- ETAG is the first script argument, quotes included, exactly as the server sent it in
-- its ETag field (nginx and netloop-demo make different ones: ask each with one GET or
-- HEAD first). The request is the same every time, so wrk formats it once per
-- connection. Statuses are counted (see statuses.lua) and printed after wrk's report as
-- "statuses: 304=N"; wrk itself counts 304s and 200s alike.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "statuses.lua").install()

function init(args)
   local etag = args[1]
   if etag == nil or etag == "" then
      error("if-none-match.lua: give the entity-tag after --, e.g. -- '\"6552c3a5-d\"'")
   end
   -- wrk formats wrk.headers (Host set already) into the request after init().
   wrk.headers["If-None-Match"] = etag
end
