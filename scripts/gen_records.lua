-- Writes N RECORD lines shaped like source-faker `users` (~600 bytes each)
-- for the benchmarks: luabyte scripts/gen_records.lua N FILE
local n, path = tonumber(arg[1]), arg[2]
assert(n and path, "usage: gen_records.lua N FILE")
local f = assert(io.open(path, "w"))
f:setvbuf("full", 1 << 20)
local names = { "Reda", "Lacey", "Wilber", "Jude", "Maximo", "Hung", "Marlene", "Kenny" }
local langs = { "Tamil", "Italian", "Swahili", "Dutch", "Korean", "Bengali" }
for i = 1, n do
  local name = names[i % #names + 1]
  f:write('{"type":"RECORD","record":{"stream":"users","data":{"id":', i,
    ',"created_at":"2009-08-12T18:57:58+00:00","updated_at":"2012-07-02T08:32:31+00:00","name":"', name,
    '","title":"M.Sc.Tech.","age":', 20 + i % 60,
    ',"email":"', name:lower(), i, '@protonmail.com","telephone":"+1-(110)-795-7610","gender":"',
    i % 2 == 0 and "Male" or "Female", '","language":"', langs[i % #langs + 1],
    '","academic_degree":"Master","nationality":"Italian","occupation":"Word Processing Operator",',
    '"height":"1.55","blood_type":"B\\u2212","weight":', 50 + i % 40,
    ',"address":{"street_number":"', i % 900, '","street_name":"Lakeshore","city":"Ringwood",',
    '"state":"Texas","province":"Saitama","postal_code":"', 10000 + i % 80000, '","country_code":"FI"}}',
    ',"emitted_at":1669682107441}}\n')
end
f:close()
