-- connectors.source-faker: the built-in Sample Data (Faker) source, written
-- with airbyte.cdk. It mirrors airbyte/source-faker: the same spec, the
-- streams users, products and purchases with the same JSON schemas, records
-- that look alike, and updated_at as the incremental cursor.
--
-- Data is a pure function of (seed, stream, id): every record gets its own
-- pseudo-random sequence (splitmix64), so output is deterministic for a seed,
-- and purchases can find their user's created_at without generating users.
--
-- updated_at ("the clock") is strictly increasing with the id:
--   always_updated = false: 2023-01-01T00:00:00Z + id seconds. A state
--     {"updated_at": T} therefore says which ids were emitted; a later read
--     emits only ids whose updated_at is after T (new ids when count grows).
--   always_updated = true: ends near "now" and starts after the state's
--     updated_at, so every record is new each sync, like the real connector.
-- `parallelism` is accepted and ignored: one Lua thread generates the data.

local cdk = require "airbyte.cdk"
local schemas = require "connectors.source_faker_schemas"

local floor, tointeger = math.floor, math.tointeger

---------------------------------------------------------------------------
-- Pseudo-random numbers: splitmix64 in 64-bit integer arithmetic (Lua 5.4
-- integers wrap on overflow and >> is a logical shift).
---------------------------------------------------------------------------

local GAMMA = 0x9E3779B97F4A7C15

local function mix64(z)
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

-- A generator: reseed(key) starts the sequence of one record; rand(n) draws
-- an integer in [0, n), draw() 53 bits. Closures, so two reads never share
-- a sequence.
local function new_rng()
  local s = 0
  local function reseed(key) s = mix64(key) end
  -- 53 random bits, as a non-negative integer
  local function draw()
    s = s + GAMMA
    local z = s
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    return z >> 11
  end
  local function rand(n) return draw() % n end
  return reseed, rand, draw
end

-- Per-stream salts keep the users', purchases' and products' sequences apart.
local SALT_USERS, SALT_PURCHASES, SALT_PRODUCTS = 0x75736572, 0x70757263, 0x70726f64

local function record_key(seed, salt, id)
  return mix64(seed * GAMMA + salt) ~ (id * 0xD1B54A32D192ED03)
end

---------------------------------------------------------------------------
-- Time: epoch seconds <-> "YYYY-MM-DDTHH:MM:SS+00:00", without os.date in
-- the hot loop (days <-> civil dates on the proleptic Gregorian calendar).
---------------------------------------------------------------------------

local D2 = {}
for i = 0, 99 do D2[i] = (i < 10 and "0" or "") .. i end
local D3, D4 = {}, {}
for i = 0, 999 do D3[i] = D2[i // 10] .. (i % 10) end
for i = 0, 9999 do D4[i] = D2[i // 100] .. D2[i % 100] end

local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- "YYYY-MM-DDT" by day number, memoised: records reuse a few thousand days.
local DATES = setmetatable({}, { __index = function(dates, days)
  local y, m, d = civil_from_days(days)
  local s = D4[y] .. "-" .. D2[m] .. "-" .. D2[d] .. "T"
  dates[days] = s
  return s
end })

local function iso(t)
  local days = t // 86400
  local secs = t - days * 86400
  return DATES[days] .. D2[secs // 3600] .. ":" .. D2[secs // 60 % 60] .. ":" .. D2[secs % 60] .. "+00:00"
end

-- Parses what iso() writes, plus "Z", fractions and other offsets.
local function parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local t = days_from_civil(tointeger(y), tointeger(mo), tointeger(d)) * 86400
    + tointeger(h) * 3600 + tointeger(mi) * 60 + tointeger(sec)
  rest = rest:gsub("^%.%d+", "")
  local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = tointeger(oh) * 3600 + tointeger(om) * 60
    t = sign == "+" and t - off or t + off
  elseif rest ~= "" and rest ~= "Z" then
    return nil
  end
  return t
end

local FIXED_BASE = days_from_civil(2023, 1, 1) * 86400 -- updated_at of id 0
local CREATED_FROM = days_from_civil(2000, 1, 1) * 86400
local CREATED_SPAN = days_from_civil(2018, 1, 1) * 86400 - CREATED_FROM
local EVENTS_END = days_from_civil(2022, 12, 1) * 86400 -- purchases happen before
local DAY = 86400

---------------------------------------------------------------------------
-- Vocabulary
---------------------------------------------------------------------------

local FIRST_NAMES = {
  "Reda", "Tristan", "Yuki", "Fred", "Emmitt", "Hollis", "Kip", "Carie", "Steven", "Lore",
  "Abel", "Adriana", "Agustin", "Aiko", "Alba", "Alonzo", "Amina", "Anders", "Ardella", "Augustine",
  "Basil", "Beatrix", "Benedict", "Bettina", "Bradly", "Bryon", "Carmelo", "Cecila", "Chang", "Cleo",
  "Colby", "Cornell", "Dalia", "Darnell", "Delphine", "Dewey", "Dorian", "Eboni", "Elden", "Elisha",
  "Ema", "Errol", "Esperanza", "Ezra", "Felipe", "Florencio", "Gaston", "Genaro", "Gilma", "Gwen",
  "Hana", "Harlan", "Hedy", "Hilario", "Ida", "Ines", "Isaias", "Jacinto", "Janae", "Jarvis",
  "Joaquin", "Julee", "Kam", "Karolyn", "Kenya", "Kurtis", "Lamar", "Larae", "Leonel", "Lianne",
  "Lorenzo", "Lucio", "Lynwood", "Mafalda", "Marcel", "Marlin", "Milagros", "Minh", "Myron", "Nadine",
  "Neville", "Nicola", "Noe", "Octavio", "Ollie", "Oren", "Palmer", "Pearline", "Porfirio",
  "Quinton", "Raleigh", "Reina", "Rhett", "Rolando", "Rosalba", "Rufus", "Sacha", "Santos", "Shanell",
  "Sherwood", "Solomon", "Sunny", "Tamica", "Tawny", "Teodoro", "Thi", "Toby", "Tuan", "Ulysses",
  "Valery", "Vance", "Verna", "Wade", "Wilburn", "Willene", "Xavier", "Yolonda", "Zack", "Zora",
}

local TITLES = {
  "M.Sc.Tech.", "Miss", "MMath", "DPhil", "MSc", "M.D.", "Madam", "Mr.", "Mrs.", "Ms.",
  "Dr.", "Sir", "Lady", "Lord", "PhD", "BSc", "MBA", "MPhil", "Prof.", "Mx.",
}

local GENDERS = { "Male", "Female", "Other", "Fluid" }

local LANGUAGES = {
  "Tamil", "Bosnian", "Armenian", "Assamese", "English", "Swati", "Kyrgyz", "Catalan", "Polish",
  "Afrikaans", "Albanian", "Arabic", "Basque", "Bengali", "Bulgarian", "Burmese", "Croatian",
  "Czech", "Danish", "Dutch", "Estonian", "Fijian", "Finnish", "French", "Georgian", "German",
  "Greek", "Gujarati", "Hebrew", "Hindi", "Hungarian", "Icelandic", "Indonesian", "Irish",
  "Italian", "Japanese", "Kannada", "Kazakh", "Korean", "Lao", "Latvian", "Lithuanian",
  "Malay", "Maltese", "Maori", "Marathi", "Mongolian", "Nepali", "Norwegian", "Pashto",
  "Persian", "Portuguese", "Punjabi", "Romanian", "Russian", "Samoan", "Serbian", "Slovak",
  "Somali", "Spanish", "Swahili", "Swedish", "Tajik", "Telugu", "Thai", "Tongan", "Turkish",
  "Ukrainian", "Urdu", "Uzbek", "Vietnamese", "Welsh", "Xhosa", "Zulu",
}

local DEGREES = { "Bachelor", "Master", "PhD" }

local NATIONALITIES = {
  "Italian", "Estonian", "Swiss", "Russian", "Jordanian", "Chilean", "Guatemalan", "Egyptian",
  "French", "Argentinian", "Australian", "Austrian", "Belgian", "Bolivian", "Brazilian",
  "British", "Bulgarian", "Cambodian", "Canadian", "Chinese", "Colombian", "Cuban", "Czech",
  "Danish", "Dominican", "Dutch", "Ecuadorian", "Ethiopian", "Filipino", "Finnish", "German",
  "Ghanaian", "Greek", "Haitian", "Honduran", "Hungarian", "Icelandic", "Indian", "Indonesian",
  "Iranian", "Iraqi", "Irish", "Israeli", "Jamaican", "Japanese", "Kenyan", "Korean", "Laotian",
  "Latvian", "Lebanese", "Lithuanian", "Malaysian", "Mexican", "Moroccan", "New Zealander",
  "Nicaraguan", "Nigerian", "Norwegian", "Pakistani", "Panamanian", "Paraguayan", "Peruvian",
  "Polish", "Portuguese", "Romanian", "Salvadorian", "Saudi", "Scottish", "Serbian", "Spanish",
  "Swedish", "Taiwanese", "Thai", "Tunisian", "Turkish", "Ukrainian", "Uruguayan", "Venezuelan",
  "Vietnamese", "Welsh",
}

local OCCUPATIONS = {
  "Word Processing Operator", "Tiler", "Valuer", "Turkey Farmer", "Stone Sawyer", "Writer",
  "Salesman", "Park Ranger", "Ambulance Driver", "Registrar", "Accountant", "Actuary",
  "Air Traffic Controller", "Architect", "Baker", "Bank Clerk", "Barber", "Bookbinder",
  "Bricklayer", "Bus Driver", "Butcher", "Carpenter", "Cartographer", "Chef", "Chemist",
  "Civil Engineer", "Claims Adjuster", "Coach", "Courier", "Crane Operator", "Dancer",
  "Dentist", "Dietician", "Draughtsman", "Economist", "Electrician", "Engraver", "Farmer",
  "Fire Fighter", "Florist", "Gardener", "Geologist", "Glazier", "Hairdresser", "Historian",
  "Illustrator", "Interpreter", "Janitor", "Jeweller", "Journalist", "Judge", "Librarian",
  "Locksmith", "Machinist", "Mechanic", "Midwife", "Miner", "Musician", "Nurse", "Optician",
  "Painter", "Pharmacist", "Photographer", "Physicist", "Pilot", "Plumber", "Postman",
  "Potter", "Printer", "Radiographer", "Receptionist", "Roofer", "Sailor", "Scientist",
  "Sculptor", "Shepherd", "Software Engineer", "Surveyor", "Tailor", "Teacher", "Translator",
  "Upholsterer", "Veterinarian", "Waiter", "Welder", "Zoologist",
}

-- U+2212 MINUS SIGN, as the real connector writes blood types.
local BLOOD_TYPES = { "A+", "A\u{2212}", "B+", "B\u{2212}", "AB+", "AB\u{2212}", "O+", "O\u{2212}" }

local EMAIL_WORDS = {
  "locations", "variations", "vacuum", "causes", "athens", "fisheries", "numbers", "watershed",
  "llp", "resident", "acoustic", "adapter", "album", "anchor", "apparel", "archive", "avenue",
  "ballot", "beacon", "bridges", "cabinet", "canvas", "cargo", "cellar", "chapter", "circuit",
  "compass", "cottage", "delta", "desert", "domain", "engine", "estate", "fabric", "falcon",
  "garden", "glacier", "harbor", "horizon", "island", "journal", "kernel", "lantern", "ledger",
  "marble", "meadow", "mirror", "nectar", "orbit", "paddle", "pepper", "prairie", "quartz",
  "rapids", "ribbon", "saddle", "signal", "summit", "tandem", "thunder", "timber", "tunnel",
  "velvet", "voyage", "walnut", "willow", "yonder", "zenith",
}

local EMAIL_DOMAINS = {
  "protonmail.com", "duck.com", "yahoo.com", "outlook.com", "gmail.com", "yandex.com",
  "example.com", "hotmail.com", "icloud.com", "aol.com", "gmx.com", "live.com",
}

local STREET_NAMES = {
  "Acorn", "Alder", "Aspen", "Bayview", "Beacon", "Birch", "Brookside", "Cedar", "Chestnut",
  "Clover", "Crescent", "Cypress", "Dogwood", "Eastwood", "Elm", "Fairview", "Forest", "Garfield",
  "Glenwood", "Hamilton", "Harbor", "Hawthorne", "Highland", "Hillcrest", "Holly", "Jefferson",
  "Juniper", "Kingston", "Lakeview", "Laurel", "Lincoln", "Linden", "Madison", "Magnolia",
  "Maple", "Meadow", "Mill", "Monroe", "Oak", "Orchard", "Park", "Pine", "Pleasant", "Poplar",
  "Prospect", "Redwood", "Ridge", "River", "Riverside", "Rose", "Sherwood", "Spring", "Spruce",
  "Summit", "Sunset", "Sycamore", "Valley", "Walnut", "Washington", "Willow", "Woodland",
}

local STREET_SUFFIXES = {
  "Street", "Avenue", "Road", "Lane", "Drive", "Court", "Place", "Boulevard", "Way", "Terrace",
  "Circle", "Trail", "Parkway", "Row", "Square",
}

local CITIES = {
  "Aberdeen", "Albany", "Alexandria", "Amarillo", "Anchorage", "Ann Arbor", "Arlington", "Asheville",
  "Athens", "Augusta", "Austin", "Bakersfield", "Baltimore", "Baton Rouge", "Bellevue", "Billings",
  "Birmingham", "Boise", "Boulder", "Bozeman", "Bridgeport", "Buffalo", "Burlington", "Cambridge",
  "Carson City", "Cedar Rapids", "Charleston", "Charlotte", "Chattanooga", "Cheyenne", "Chico",
  "Cleveland", "Columbia", "Concord", "Dayton", "Denver", "Des Moines", "Dover", "Duluth",
  "Durham", "El Paso", "Erie", "Eugene", "Evansville", "Fairbanks", "Fargo", "Flagstaff", "Fresno",
  "Gainesville", "Green Bay", "Greenville", "Hartford", "Helena", "Honolulu", "Houston",
  "Huntsville", "Jackson", "Juneau", "Kalamazoo", "Knoxville", "Lafayette", "Lansing", "Laramie",
  "Lexington", "Lincoln", "Little Rock", "Madison", "Memphis", "Missoula", "Mobile", "Montpelier",
  "Nashville", "Norfolk", "Oakland", "Odessa", "Olympia", "Omaha", "Orlando", "Pasadena", "Peoria",
  "Portland", "Providence", "Provo", "Raleigh", "Reno", "Richmond", "Rochester", "Salem",
  "Santa Fe", "Savannah", "Scranton", "Spokane", "Springfield", "Syracuse", "Tacoma", "Tallahassee",
  "Topeka", "Tucson", "Tulsa", "Waco", "Wichita", "Wilmington", "Yonkers",
}

local STATES = {
  "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
  "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky",
  "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi",
  "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico",
  "New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania",
  "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont",
  "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
}

local COUNTRY_CODES = {
  "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE", "GB", "IE", "FR", "DE", "NL", "BE", "CH", "AT",
  "IT", "ES", "PT", "PL", "CZ", "SE", "NO", "DK", "FI", "EE", "LV", "LT", "GR", "TR", "RU", "UA",
  "EG", "MA", "NG", "KE", "ZA", "IL", "JO", "SA", "AE", "IN", "PK", "CN", "JP", "KR", "VN", "TH",
  "ID", "PH", "AU", "NZ",
}

-- Heights are strings in metres with two decimals: "1.50" .. "2.00".
local HEIGHTS = {}
for cm = 150, 200 do HEIGHTS[#HEIGHTS + 1] = (cm // 100) .. "." .. D2[cm % 100] end

-- The products are a fixed catalogue: make, model, year, price, created_at
-- (the real connector's list, as its expected records show it).
local PRODUCTS = {
  { "Mazda", "MX-5", 2008, 2869, "2022-02-01T17:02:19+00:00" },
  { "Mercedes-Benz", "C-Class", 2009, 42397, "2021-01-25T14:31:33+00:00" },
  { "Honda", "Accord Crosstour", 2011, 63293, "2021-02-11T05:36:03+00:00" },
  { "GMC", "Jimmy", 1998, 34079, "2022-01-24T03:00:03+00:00" },
  { "Infiniti", "FX", 2004, 17036, "2021-10-02T03:55:44+00:00" },
  { "Dodge", "Intrepid", 2002, 65498, "2022-01-18T00:41:08+00:00" },
  { "Nissan", "Frontier", 2005, 14516, "2021-04-22T16:37:44+00:00" },
  { "Chevrolet", "Express 1500", 2007, 13023, "2021-07-12T07:13:04+00:00" },
  { "Bentley", "Continental GTC", 2008, 43458, "2021-03-17T05:43:15+00:00" },
  { "Cadillac", "DTS", 2008, 43859, "2021-08-12T07:33:58+00:00" },
  { "Dodge", "Ram 2500", 2000, 82904, "2021-09-03T10:51:16+00:00" },
  { "Suzuki", "SJ 410", 1984, 38667, "2021-01-11T00:15:46+00:00" },
  { "Audi", "S4", 2005, 2391, "2021-09-06T03:31:10+00:00" },
  { "Chevrolet", "Suburban 2500", 1998, 55733, "2021-10-18T17:26:05+00:00" },
  { "Ford", "Ranger", 2000, 20228, "2022-03-24T04:03:19+00:00" },
  { "Chevrolet", "Corvette", 2009, 75052, "2021-12-31T03:38:21+00:00" },
  { "Mitsubishi", "Pajero", 1993, 84058, "2021-10-15T00:25:34+00:00" },
  { "Lincoln", "LS", 2002, 34081, "2022-02-14T22:12:01+00:00" },
  { "Dodge", "Magnum", 2005, 85545, "2021-07-25T22:49:48+00:00" },
  { "Pontiac", "Grand Am", 2001, 54837, "2021-10-15T14:08:30+00:00" },
  { "Chevrolet", "Suburban 1500", 2006, 89410, "2021-03-23T15:40:43+00:00" },
  { "GMC", "Sierra 1500", 2005, 14288, "2021-08-30T13:40:04+00:00" },
  { "GMC", "3500", 1995, 12011, "2022-04-24T13:11:08+00:00" },
  { "Mazda", "Mazda5", 2006, 6393, "2021-07-07T14:14:33+00:00" },
  { "Chevrolet", "Camaro", 1967, 71590, "2021-01-10T21:50:22+00:00" },
  { "Ford", "Explorer Sport Trac", 2010, 23498, "2022-04-20T00:52:20+00:00" },
  { "Dodge", "Caravan", 1985, 50071, "2022-01-05T10:13:31+00:00" },
  { "Nissan", "240SX", 1992, 38379, "2022-04-07T04:48:48+00:00" },
  { "Oldsmobile", "Intrigue", 2002, 21376, "2021-10-01T13:30:49+00:00" },
  { "Audi", "TT", 2011, 40893, "2021-02-28T23:06:37+00:00" },
  { "Ford", "Crown Victoria", 2006, 86225, "2021-01-28T23:33:27+00:00" },
  { "Toyota", "Tacoma", 2003, 73558, "2022-01-28T22:02:04+00:00" },
  { "Buick", "Regal", 1994, 32279, "2022-04-04T13:35:49+00:00" },
  { "Mercedes-Benz", "C-Class", 2001, 98732, "2021-03-30T23:16:05+00:00" },
  { "GMC", "Sierra 3500", 2002, 48267, "2021-07-30T20:29:51+00:00" },
  { "Pontiac", "G6", 2005, 16766, "2021-03-24T07:53:33+00:00" },
  { "Subaru", "Outback Sport", 2002, 34523, "2021-12-23T22:47:32+00:00" },
  { "Ferrari", "F430", 2007, 31677, "2021-01-11T04:49:57+00:00" },
  { "Mitsubishi", "Montero", 2003, 67136, "2021-05-10T07:37:56+00:00" },
  { "Nissan", "Sentra", 1993, 78236, "2021-11-10T23:48:26+00:00" },
  { "Mitsubishi", "3000GT", 1993, 58150, "2021-09-08T06:55:22+00:00" },
  { "Ford", "E350", 2012, 55270, "2021-03-24T13:17:37+00:00" },
  { "Ford", "Taurus", 1987, 13522, "2021-10-27T21:03:59+00:00" },
  { "Chevrolet", "Avalanche", 2012, 9862, "2021-07-13T12:22:26+00:00" },
  { "Dodge", "Charger", 2012, 81887, "2021-04-24T01:48:24+00:00" },
  { "Jaguar", "S-Type", 2005, 34372, "2021-04-03T08:56:17+00:00" },
  { "Plymouth", "Grand Voyager", 1994, 90637, "2022-04-21T09:21:08+00:00" },
  { "Pontiac", "6000", 1989, 65165, "2021-10-30T13:03:07+00:00" },
  { "Lexus", "IS", 2006, 22434, "2021-01-16T10:45:52+00:00" },
  { "Isuzu", "VehiCROSS", 2001, 38180, "2021-12-13T16:29:27+00:00" },
  { "Buick", "Regal", 2000, 38680, "2021-12-29T22:25:54+00:00" },
  { "Mercedes-Benz", "E-Class", 2007, 51556, "2021-07-06T11:42:23+00:00" },
  { "Buick", "LeSabre", 2001, 10904, "2022-01-05T18:23:35+00:00" },
  { "Porsche", "928", 1989, 70917, "2022-01-02T23:16:45+00:00" },
  { "Lexus", "RX", 2007, 5212, "2021-07-10T15:02:53+00:00" },
  { "Ford", "Econoline E250", 1996, 75095, "2021-02-04T16:17:18+00:00" },
  { "Chevrolet", "Blazer", 2001, 61918, "2021-12-08T07:25:30+00:00" },
  { "GMC", "Savana 3500", 2003, 30307, "2021-11-21T23:11:45+00:00" },
  { "BMW", "M", 2002, 24598, "2021-05-28T04:08:53+00:00" },
  { "Saturn", "S-Series", 1992, 96288, "2021-08-24T04:43:43+00:00" },
  { "Chrysler", "Sebring", 2003, 34753, "2021-02-11T11:25:35+00:00" },
  { "Lotus", "Evora", 2010, 42760, "2021-08-31T00:29:05+00:00" },
  { "Jeep", "Wrangler", 2011, 8684, "2021-06-24T10:38:05+00:00" },
  { "Ford", "Expedition", 2012, 25653, "2021-07-01T16:13:20+00:00" },
  { "Chevrolet", "Avalanche 2500", 2006, 3158, "2021-08-14T10:55:13+00:00" },
  { "Mazda", "Mazda3", 2012, 79820, "2021-05-25T21:55:52+00:00" },
  { "Toyota", "Tacoma", 2005, 73572, "2021-01-22T09:56:02+00:00" },
  { "Ford", "Explorer Sport", 2000, 64579, "2021-02-16T06:56:06+00:00" },
  { "GMC", "Savana Cargo Van", 2006, 65944, "2021-09-12T14:08:53+00:00" },
  { "Chevrolet", "HHR", 2009, 8953, "2021-08-17T04:25:43+00:00" },
  { "Ford", "Bronco II", 1989, 41811, "2021-07-14T14:20:28+00:00" },
  { "Chevrolet", "Suburban 2500", 2011, 57488, "2021-09-22T12:32:57+00:00" },
  { "Suzuki", "Grand Vitara", 2008, 6408, "2021-11-12T23:19:52+00:00" },
  { "Mazda", "Mazda6", 2012, 14805, "2021-06-01T01:55:32+00:00" },
  { "Chevrolet", "Tahoe", 1998, 33585, "2022-01-09T04:28:54+00:00" },
  { "Ford", "Explorer Sport Trac", 2010, 2087, "2022-03-28T00:28:16+00:00" },
  { "Ford", "F150", 2007, 17621, "2021-03-23T15:08:10+00:00" },
  { "Ford", "Taurus", 1995, 16478, "2021-06-07T22:29:50+00:00" },
  { "Mitsubishi", "Truck", 1992, 70616, "2022-01-30T05:14:02+00:00" },
  { "Dodge", "Colt", 1994, 34163, "2022-04-02T18:06:30+00:00" },
  { "Mazda", "RX-7", 1991, 29634, "2021-01-06T10:30:59+00:00" },
  { "Pontiac", "Grand Prix", 1984, 88575, "2021-02-24T06:06:57+00:00" },
  { "Mazda", "Mazdaspeed 3", 2012, 77723, "2021-11-11T22:48:05+00:00" },
  { "Alfa Romeo", "Spider", 1992, 64288, "2021-01-06T03:50:27+00:00" },
  { "Audi", "S8", 2002, 33718, "2021-07-21T11:14:54+00:00" },
  { "Isuzu", "Amigo", 1992, 53335, "2022-03-02T10:42:21+00:00" },
  { "Toyota", "Paseo", 1996, 74558, "2021-10-02T14:54:58+00:00" },
  { "Lincoln", "Continental Mark VII", 1986, 42150, "2021-10-02T04:48:53+00:00" },
  { "Dodge", "Dakota", 1997, 64516, "2021-09-09T23:13:26+00:00" },
  { "Chevrolet", "Tahoe", 1998, 51461, "2021-04-06T08:29:19+00:00" },
  { "Pontiac", "Vibe", 2006, 12134, "2021-01-11T22:30:14+00:00" },
  { "Volkswagen", "Eos", 2011, 53128, "2021-01-12T23:25:06+00:00" },
  { "Mazda", "Mazdaspeed6", 2007, 90902, "2021-12-29T14:29:03+00:00" },
  { "Nissan", "Xterra", 2005, 41532, "2021-09-07T09:00:49+00:00" },
  { "Mercury", "Sable", 2005, 71337, "2021-01-31T22:13:44+00:00" },
  { "BMW", "330", 2006, 14494, "2021-09-17T20:52:48+00:00" },
  { "Audi", "R8", 2008, 17642, "2021-09-21T11:56:24+00:00" },
  { "Cadillac", "CTS-V", 2007, 19914, "2021-09-02T15:38:46+00:00" },
  { "GMC", "1500 Club Coupe", 1997, 82288, "2021-04-20T18:58:15+00:00" },
  { "Buick", "Somerset", 1986, 64148, "2021-06-10T19:07:38+00:00" },
}

-- Records are built only from these words, digits and ASCII punctuation,
-- so the kit may skip scanning them for JSON escapes (safe_strings); this
-- check keeps that promise honest if a word is ever edited.
local function assert_json_safe(list, name)
  for _, v in ipairs(list) do
    local s = type(v) == "table" and (v[1] .. v[2] .. v[5]) or v
    assert(not s:find('[%c"\\]'), name .. " has a word that needs JSON escaping: " .. s)
  end
end
for name, list in pairs { FIRST_NAMES = FIRST_NAMES, TITLES = TITLES, GENDERS = GENDERS, LANGUAGES = LANGUAGES,
                          DEGREES = DEGREES, NATIONALITIES = NATIONALITIES, OCCUPATIONS = OCCUPATIONS,
                          BLOOD_TYPES = BLOOD_TYPES, EMAIL_WORDS = EMAIL_WORDS, EMAIL_DOMAINS = EMAIL_DOMAINS,
                          STREET_NAMES = STREET_NAMES, STREET_SUFFIXES = STREET_SUFFIXES, CITIES = CITIES,
                          STATES = STATES, COUNTRY_CODES = COUNTRY_CODES, PRODUCTS = PRODUCTS } do
  assert_json_safe(list, name)
end

---------------------------------------------------------------------------
-- Record generators. Each returns one reused table (the kit encodes it
-- before the next call), so the hot loop allocates only the strings.
---------------------------------------------------------------------------

-- Small picks share one 53-bit draw: r % n is a pick, r // n the bits left.
-- Each draw below keeps the product of its ranges under 2^53.
local YEARS = {}
for y = 1800, 2099 do YEARS[y - 1800] = tostring(y) end
local NUMBERS = {}
for i = 1, 9999 do NUMBERS[i] = tostring(i) end

local function telephone(f, a, b, c)
  if f == 0 then return "+1-(" .. a .. ")-" .. b .. "-" .. c
  elseif f == 1 then return a .. "-" .. b .. "-" .. c
  elseif f == 2 then return "1-" .. a .. "-" .. b .. "-" .. c
  elseif f == 3 then return "(" .. a .. ") " .. b .. "-" .. c
  end
  return a .. "." .. b .. "." .. c
end

local function new_users(seed)
  local reseed, _, draw = new_rng()
  local address = {}
  local rec = { address = address }
  local n_first, n_titles, n_lang, n_nat, n_occ = #FIRST_NAMES, #TITLES, #LANGUAGES, #NATIONALITIES, #OCCUPATIONS
  local n_words, n_domains, n_heights = #EMAIL_WORDS, #EMAIL_DOMAINS, #HEIGHTS
  local n_streets, n_suffixes, n_cities, n_states, n_codes = #STREET_NAMES, #STREET_SUFFIXES, #CITIES, #STATES, #COUNTRY_CODES

  -- user(id, updated_at) fills rec. created_at must stay draw 1 % CREATED_SPAN
  -- (purchases rely on it, see new_created_at_of).
  return function(id, updated_at)
    reseed(record_key(seed, SALT_USERS, id))
    local r = draw()
    rec.id = id
    rec.created_at = iso(CREATED_FROM + r % CREATED_SPAN); r = r // CREATED_SPAN
    rec.updated_at = updated_at
    rec.name = FIRST_NAMES[r % n_first + 1]; r = r // n_first
    rec.title = TITLES[r % n_titles + 1]; r = r // n_titles
    rec.age = 18 + r % 63; r = r // 63
    rec.gender = GENDERS[r % 4 + 1]; r = r // 4
    rec.academic_degree = DEGREES[r % 3 + 1]

    r = draw()
    local word = EMAIL_WORDS[r % n_words + 1]; r = r // n_words
    local year = YEARS[r % 300]; r = r // 300
    rec.email = word .. year .. "+" .. id .. "@" .. EMAIL_DOMAINS[r % n_domains + 1]; r = r // n_domains
    local phone_format = r % 5; r = r // 5
    rec.language = LANGUAGES[r % n_lang + 1]; r = r // n_lang
    rec.nationality = NATIONALITIES[r % n_nat + 1]; r = r // n_nat
    rec.occupation = OCCUPATIONS[r % n_occ + 1]; r = r // n_occ
    rec.height = HEIGHTS[r % n_heights + 1]; r = r // n_heights
    rec.blood_type = BLOOD_TYPES[r % 8 + 1]

    r = draw()
    local a = D3[r % 1000]; r = r // 1000
    local b = D3[r % 1000]; r = r // 1000
    rec.telephone = telephone(phone_format, a, b, D4[r % 10000]); r = r // 10000
    rec.weight = 38 + r % 63

    r = draw()
    address.street_number = NUMBERS[r % 9999 + 1]; r = r // 9999
    address.street_name = STREET_NAMES[r % n_streets + 1] .. " " .. STREET_SUFFIXES[r // n_streets % n_suffixes + 1]
    r = r // (n_streets * n_suffixes)
    address.city = CITIES[r % n_cities + 1]; r = r // n_cities
    address.state = STATES[r % n_states + 1]; r = r // n_states
    address.province = STATES[r % n_states + 1]

    r = draw()
    address.postal_code = D2[r % 100] .. D3[r // 100 % 1000]; r = r // 100000
    address.country_code = COUNTRY_CODES[r % n_codes + 1]
    return rec
  end
end

-- A user's created_at as epoch seconds: the first draw of its sequence.
local function new_created_at_of(seed)
  local reseed, rand = new_rng()
  return function(user_id)
    reseed(record_key(seed, SALT_USERS, user_id))
    return CREATED_FROM + rand(CREATED_SPAN)
  end
end

-- Purchases come in groups of ten per ten users: the user ending in 6 buys
-- nothing, the one ending in 8 buys twice, the others once. So purchase ids
-- map to users without a lookup, and counts follow `count`.
local USER_OF_SLOT = { 1, 2, 3, 4, 5, 7, 8, 8, 9, 10 }
local PURCHASES_IN_PARTIAL_GROUP = { [0] = 0, 1, 2, 3, 4, 5, 5, 6, 8, 9 }

local function purchase_count(users)
  return users // 10 * 10 + PURCHASES_IN_PARTIAL_GROUP[users % 10]
end

local function user_of_purchase(pid)
  local g = (pid - 1) // 10
  return g * 10 + USER_OF_SLOT[(pid - 1) % 10 + 1]
end

local function new_purchases(seed)
  local reseed, rand = new_rng()
  local created_at_of = new_created_at_of(seed)
  local rec = {}
  local null = cdk.null
  return function(id, updated_at)
    local user_id = user_of_purchase(id)
    local user_created = created_at_of(user_id)
    reseed(record_key(seed, SALT_PURCHASES, id))
    local added = user_created + rand(EVENTS_END - user_created)
    rec.id = id
    rec.user_id = user_id
    rec.product_id = 1 + rand(#PRODUCTS)
    rec.created_at = iso(added)
    rec.updated_at = updated_at
    rec.added_to_cart_at = rec.created_at
    rec.purchased_at, rec.returned_at = null, null
    if rand(10) < 7 then -- most carts are bought, within two years
      local left = EVENTS_END - added
      local purchased = added + rand(left < 730 * DAY and left + 1 or 730 * DAY)
      rec.purchased_at = iso(purchased)
      if rand(10) < 2 then -- some are returned, within 90 days
        rec.returned_at = iso(purchased + rand(90 * DAY))
      end
    end
    return rec
  end
end

-- The catalogue is fixed, like the real one: no seed, no randomness.
local function new_products()
  local rec = {}
  return function(id, updated_at)
    local p = PRODUCTS[id]
    rec.id = id
    rec.make, rec.model, rec.year, rec.price = p[1], p[2], p[3], p[4]
    rec.description = "A " .. p[3] .. " " .. p[1] .. " " .. p[2] .. "."
    rec.created_at = p[5]
    rec.updated_at = updated_at
    return rec
  end
end

---------------------------------------------------------------------------
-- Streams
---------------------------------------------------------------------------

local STREAMS = {
  { name = "users", schema = schemas.users, generator = new_users,
    size = function(cfg) return cfg.count end },
  { name = "products", schema = schemas.products, generator = new_products,
    size = function() return #PRODUCTS end },
  { name = "purchases", schema = schemas.purchases, generator = new_purchases,
    size = function(cfg) return purchase_count(cfg.count) end },
}
local STREAM_BY_NAME = {}
for _, s in ipairs(STREAMS) do STREAM_BY_NAME[s.name] = s end

local function catalog_entry(s)
  return {
    name = s.name,
    json_schema = s.schema,
    supported_sync_modes = cdk.array { "full_refresh", "incremental" },
    source_defined_cursor = true,
    default_cursor_field = cdk.array { "updated_at" },
    source_defined_primary_key = cdk.array { cdk.array { "id" } },
  }
end

-- seed -1 (the default) asks for a random seed; anything else is used as is.
local function resolve_config(config)
  local seed = config.seed or -1
  if seed == -1 then seed = os.time() ~ (tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0) end
  local always = config.always_updated
  if always == nil then always = true end
  return {
    count = config.count or 1000,
    seed = seed,
    records_per_slice = config.records_per_slice or 1000,
    always_updated = always,
  }
end

-- Where a read starts and what its clock is, from the stream's state:
-- returns first_id, base (updated_at of id i is base + i), previous cursor.
local function plan(cfg, n, stream_state, emit, name)
  local prev_t, prev_cursor, legacy
  if type(stream_state) == "table" then
    if stream_state.updated_at ~= nil then
      prev_cursor = stream_state.updated_at
      prev_t = parse_iso(prev_cursor)
      if not prev_t then
        emit.log("WARN", name .. ": ignoring state with an unreadable updated_at: " .. tostring(prev_cursor))
        prev_cursor = nil
      end
    elseif type(stream_state.cursor) == "number" then -- the old connector's {"cursor": N}
      legacy = stream_state.cursor
    end
  end
  if cfg.always_updated then
    local base = os.time() - n
    if prev_t and base < prev_t then base = prev_t end
    return 1, base, prev_cursor
  end
  local first = 1
  if prev_t then
    first = prev_t - FIXED_BASE + 1
  elseif legacy then
    first = legacy >= n and n + 1 or floor(legacy) + 1
    prev_cursor = iso(FIXED_BASE + (first - 1))
  end
  if first < 1 then first = 1 end
  return first, FIXED_BASE, prev_cursor
end

local function read_stream(s, cfg, configured, state, emit)
  local h = emit.stream(s.name, { schema = s.schema, exact_fields = true, safe_strings = true })
  h:started()
  local n = s.size(cfg)
  local stream_state
  if configured.sync_mode == "incremental" then stream_state = cdk.stream_state(state, s.name) end
  local first, base, cursor = plan(cfg, n, stream_state, emit, s.name)
  if first <= n then h:estimate(n - first + 1) end
  local make = s.generator(cfg.seed)
  local per_slice, in_slice = cfg.records_per_slice, 0
  for id = first, n do
    cursor = iso(base + id)
    h:record(make(id, cursor))
    in_slice = in_slice + 1
    if in_slice == per_slice and id < n then -- the last slice's state comes after the loop
      h:state({ updated_at = cursor })
      in_slice = 0
    end
  end
  h:state(cursor and { updated_at = cursor } or {})
  h:complete()
end

---------------------------------------------------------------------------
-- The connector
---------------------------------------------------------------------------

-- The kit has validated the config against the spec (count >= 1, types, ...),
-- which is all there is to check: the faker needs no connection.
local function check()
  return true
end

local function discover()
  local streams = {}
  for i, s in ipairs(STREAMS) do streams[i] = catalog_entry(s) end
  return streams
end

local function read(config, catalog, state, emit)
  local cfg = resolve_config(config)
  for _, configured in ipairs(catalog.streams or {}) do
    local name = configured.stream and configured.stream.name
    local s = STREAM_BY_NAME[name]
    if s then
      read_stream(s, cfg, configured, state, emit)
    else
      emit.log("WARN", "source-faker has no stream named " .. tostring(name))
      emit.stream(name):incomplete()
    end
  end
end

return cdk.source {
  spec = schemas.spec,
  check = check,
  discover = discover,
  read = read,
}
