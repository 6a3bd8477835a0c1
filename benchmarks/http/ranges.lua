-- random 1 MiB Range slices of a 50 MiB file; path and headers come from the environment
local size = 50 * 1024 * 1024
local slice = 1024 * 1024
local path = os.getenv("BENCH_PATH") or "/bench.bin"
local key = os.getenv("BENCH_KEY")
math.randomseed(os.time())
request = function()
  local first = math.random(0, size - slice)
  local headers = { ["Range"] = string.format("bytes=%d-%d", first, first + slice - 1) }
  if key then headers["X-Api-Key"] = key end
  return wrk.format("GET", path, headers)
end
