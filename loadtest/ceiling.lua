-- wrk script of loadtest.ceiling: GET the path given after `--`, with {id} replaced by an id drawn
-- at random from the ids file (one a line) named after it; a path without {id} is sent as is.
local threads = 0
local path, ids = "/", {}

function setup(thread)
    threads = threads + 1
    thread:set("number", threads)
end

function init(args)
    path = args[1] or "/"
    if args[2] then
        for line in io.lines(args[2]) do ids[#ids + 1] = line end
    end
    math.randomseed(tonumber(args[3] or "42") * 1000 + (number or 0))
end

function request()
    if #ids == 0 then return wrk.format("GET", path) end
    return wrk.format("GET", (path:gsub("{id}", ids[math.random(#ids)])))
end
