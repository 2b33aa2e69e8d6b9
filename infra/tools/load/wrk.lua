-- wrk script for `load-test`: replays pre-signed webhook requests from a file, one per line:
--   PATH \t NAME: VALUE \x1f NAME: VALUE ... \t BODY
-- Each thread takes every n-th line. It counts answers by status, keeps the event ids answered
-- 2xx, and the main thread writes them to a file with the latency percentiles.
-- Usage: LOAD_TEST_THREADS=T LOAD_TEST_RESULT=FILE wrk -t T ... -s wrk.lua URL -- REQUESTS_FILE

local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local function split(text, separator)
    local parts = {}
    local start = 1
    while true do
        local at = string.find(text, separator, start, true)
        if not at then
            table.insert(parts, string.sub(text, start))
            return parts
        end
        table.insert(parts, string.sub(text, start, at - 1))
        start = at + #separator
    end
end

function init(args)
    requests = {}
    statuses = {}
    accepted = {}
    exhausted = 0
    local index = 0
    local file = assert(io.open(args[1], "r"))
    local threads_total = tonumber(os.getenv("LOAD_TEST_THREADS")) or 1
    for line in file:lines() do
        if index % threads_total == id then
            local fields = split(line, "\t")
            local headers = {}
            for _, header in ipairs(split(fields[2], "\31")) do
                local colon = string.find(header, ": ", 1, true)
                if colon then
                    headers[string.sub(header, 1, colon - 1)] = string.sub(header, colon + 2)
                end
            end
            table.insert(requests, wrk.format("POST", fields[1], headers, fields[3]))
        end
        index = index + 1
    end
    file:close()
    next_request = 1
end

function request()
    local r = requests[next_request]
    if r == nil then
        exhausted = exhausted + 1
        return wrk.format("GET", "/_load_test_exhausted")
    end
    next_request = next_request + 1
    return r
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status >= 200 and status < 300 then
        local id = string.match(body, '"event_id":"([^"]+)"')
        if id then
            accepted[id] = status
        end
    end
end

function done(summary, latency, requests_done)
    local out = assert(io.open(os.getenv("LOAD_TEST_RESULT") or "/dev/stdout", "w"))
    local totals = {}
    local exhausted_total = 0
    for _, thread in ipairs(threads) do
        for status, count in pairs(thread:get("statuses")) do
            totals[status] = (totals[status] or 0) + count
        end
        exhausted_total = exhausted_total + thread:get("exhausted")
        for id, status in pairs(thread:get("accepted")) do
            out:write("accepted ", id, " ", status, "\n")
        end
    end
    for status, count in pairs(totals) do
        out:write("status ", status, " ", count, "\n")
    end
    out:write("exhausted ", exhausted_total, "\n")
    for _, p in ipairs({50, 95, 99}) do
        out:write("latency_p", p, "_us ", latency:percentile(p), "\n")
    end
    out:write("requests ", summary.requests, "\n")
    out:write("duration_us ", summary.duration, "\n")
    out:write("errors ", summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, "\n")
    out:close()
end
