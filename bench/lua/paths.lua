-- Replays one pre-signed request per request (each with its own nonce), from the file named by the
-- PATHS_FILE environment variable: a path, then optional tab-separated "name: value" headers (V3).
-- With several wrk threads, thread i takes every i-th line.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = #threads > 0 and #threads or 1
  paths = {}
  local n = 0
  local i = 0
  for line in io.lines(os.getenv("PATHS_FILE")) do
    if i % nthreads == (id or 0) then
      n = n + 1
      local path, rest = line:match("^([^\t]*)\t?(.*)$")
      local headers = {}
      for name, value in rest:gmatch("([^:\t]+): ([^\t]*)") do
        headers[name] = value
      end
      paths[n] = wrk.format("GET", path, headers)
    end
    i = i + 1
  end
  total = n
  next_index = 0
end

function request()
  next_index = next_index + 1
  if next_index > total then next_index = 1 end
  return paths[next_index]
end
