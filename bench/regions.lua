-- wrk script for regiond: allocate and release 1 MiB regions.
--
--   wrk -t1 -c16 -d10s --latency -s bench/regions.lua http://127.0.0.1:8080
--   wrk ... -s bench/regions.lua http://127.0.0.1:8080 -- --pipeline 4
--
-- Traffic: POST /regions {"size":1048576} and DELETE /regions/<offset> of an
-- offset a 201 handed out, half and half.
--
-- How the POST/DELETE pairing works, and where it is approximate:
--  * wrk gives every thread its own Lua state, and request()/response() are
--    not told which connection they serve. So the state is per thread, not
--    per connection: a FIFO queue of offsets taken from 201 bodies.
--    request() sends a DELETE for the queue's head when the queue is not
--    empty, and a POST otherwise. Every offset a POST gets is therefore
--    DELETEd later, but possibly over another connection of the same thread
--    than the one that allocated it. With one connection it alternates
--    exactly: POST, DELETE, POST, ...; with more it is ~50/50 overall.
--  * The queue never grows past the number of requests in flight: a response
--    pushes at most one offset and the same connection's next request()
--    pops one. So at most (connections x pipeline) regions are held at any
--    time (64 MiB at -c64), far from the 4 GiB of the device: the pool
--    never runs dry, and a 409 not_enough_space means the server leaks.
--  * Pipelining: wrk learns the depth once, by counting the requests in the
--    string the first request() call returns, and then expects every call
--    to return that many. So request() always returns exactly `depth`
--    requests (DELETEs while the queue lasts, POSTs for the rest), and each
--    of their responses is handled on its own by response().
--  * wrk calls request() once more than it sends, in thread 0, to find the
--    depth (script_verify_request, after init()). The queue is empty then,
--    so that call only builds POSTs and changes no state. Requests are
--    therefore counted from responses, never in request().
--  * Offsets still queued or in flight when the run stops stay allocated
--    (at most connections x depth per run); so does a DELETE whose
--    connection broke (wrk reconnects and calls request() again, the lost
--    response never reaches response()). Read errors are reported by wrk.
--  * Offsets are kept as the decimal strings of the body, not as Lua
--    numbers, so nothing is rounded.
--
-- done() runs in a separate Lua state, so it reads each thread's counters
-- through thread:get(), and prints one machine-readable line:
--   BENCH requests=N duration_s=S rps=R p50_us=A p99_us=B non2xx=K ...
-- Latency percentiles are wrk's (microseconds, per request, all threads).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local post_req
local delete_prefix
local delete_suffix
local depth = 1

-- Per-thread globals (read by done() with thread:get).
responses = 0
non2xx = 0
by_status = {}      -- status (string) -> count, non-2xx only
unparsed201 = 0     -- 201 bodies without an offset

-- Queue of offsets (strings): q[qhead .. qtail-1].
local q = {}
local qhead, qtail = 1, 1

function init(args)
   local i = 1
   while i <= #args do
      if args[i] == "--pipeline" then
         depth = tonumber(args[i + 1]) or 1
         i = i + 2
      else
         i = i + 1
      end
   end
   post_req = wrk.format("POST", "/regions",
                         { ["Content-Type"] = "application/json" },
                         '{"size":1048576}')
   local host = wrk.headers["Host"] or wrk.host
   delete_prefix = "DELETE /regions/"
   delete_suffix = " HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n"
end

local function one()
   if qhead < qtail then
      local off = q[qhead]
      q[qhead] = nil
      qhead = qhead + 1
      return delete_prefix .. off .. delete_suffix
   end
   return post_req
end

function request()
   if depth == 1 then
      return one()
   end
   local parts = {}
   for i = 1, depth do
      parts[i] = one()
   end
   return table.concat(parts)
end

function response(status, headers, body)
   responses = responses + 1
   if status == 201 then
      local off = body:match('"offset"%s*:%s*(%d+)')
      if off then
         q[qtail] = off
         qtail = qtail + 1
      else
         unparsed201 = unparsed201 + 1
      end
   elseif status < 200 or status > 299 then
      non2xx = non2xx + 1
      local k = tostring(status)
      by_status[k] = (by_status[k] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total_non2xx, total_resp, total_unparsed = 0, 0, 0
   local statuses = {}
   for _, t in ipairs(threads) do
      total_resp = total_resp + (t:get("responses") or 0)
      total_non2xx = total_non2xx + (t:get("non2xx") or 0)
      total_unparsed = total_unparsed + (t:get("unparsed201") or 0)
      for k, v in pairs(t:get("by_status") or {}) do
         statuses[k] = (statuses[k] or 0) + v
      end
   end
   local codes = {}
   for k, v in pairs(statuses) do
      codes[#codes + 1] = k .. ":" .. v
   end
   table.sort(codes)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "non-2xx responses: %d%s\n", total_non2xx,
      #codes > 0 and (" (" .. table.concat(codes, " ") .. ")") or ""))
   if statuses["409"] then
      io.write("409 seen: the pool ran dry, regions leak\n")
   end
   io.write(string.format(
      "BENCH requests=%d duration_s=%.3f rps=%.1f p50_us=%d p99_us=%d " ..
      "non2xx=%d statuses=%s unparsed201=%d errors_connect=%d errors_read=%d " ..
      "errors_write=%d errors_timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(99),
      total_non2xx, #codes > 0 and table.concat(codes, ",") or "-",
      total_unparsed, e.connect, e.read, e.write, e.timeout))
end
