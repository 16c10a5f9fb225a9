-- The corpus connectors of ../shared/fixtures/manifests as test cases: a
-- config, the canned answers of the local HTTP server (tests/fixtures/http/
-- server.py routes), the URL prefixes to point at it, the configured catalog
-- and the records the read must produce. Where Airbyte publishes expected
-- records (nasa, strava, open-exchange-rates) the answers are built from them
-- (reference/declarative.md §8), so those records are compared as published.
local json = require "airbyte.json"

local M = {}

local function obj(t) return setmetatable(t or {}, json.object_mt) end
local function arr(t) return setmetatable(t or {}, json.array_mt) end
M.obj, M.arr = obj, arr

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- published expected records of a connector: stream -> { data, ... }
function M.published_records(dir)
  local by = {}
  for line in read(dir .. "/integration_tests/expected_records.jsonl"):gmatch("[^\n]+") do
    local m = json.decode(line)
    by[m.stream] = by[m.stream] or {}
    table.insert(by[m.stream], m.data)
  end
  return by
end

function M.catalog(streams)
  local out = arr()
  for _, s in ipairs(streams) do
    local name, mode = s[1], s[2] or "full_refresh"
    out[#out + 1] = obj{ stream = obj{ name = name, json_schema = obj{ type = "object" },
                                       supported_sync_modes = arr{ "full_refresh", "incremental" } },
                         sync_mode = mode, destination_sync_mode = mode == "incremental" and "append" or "overwrite" }
  end
  return obj{ streams = out }
end

local function seq(n, fn)
  local out = arr()
  for i = 1, n do out[i] = fn(i) end
  return out
end

-- Each case: rewrite = { prefix, ... } (each goes to the server), config,
-- routes, catalog (a table, or "published"), expected = { stream = {records} }.
function M.cases(shared)
  local mdir = shared .. "/fixtures/manifests"
  local C = {}

  C["source-pokeapi"] = {
    rewrite = { "https://pokeapi.co/" },
    config = obj{ pokemon_name = "ditto" },
    routes = { { method = "GET", path = "/api/v2/pokemon/ditto", responses = { { json = obj{
      id = 132, name = "ditto", base_experience = 101, height = 3, weight = 40, is_default = true,
      order = 214, abilities = arr{ obj{ ability = obj{ name = "limber", url = "https://pokeapi.co/api/v2/ability/7/" },
                                        is_hidden = false, slot = 1 } } } } } } },
    catalog = "published",
  }
  C["source-pokeapi"].expected = { pokemon = { C["source-pokeapi"].routes[1].responses[1].json } }

  local bars = seq(3, function(i) return obj{ t = 1602648000000 + i * 86400000, o = 120 + i, c = 121 + i,
                                              h = 122 + i, l = 119 + i, v = 1000 * i, vw = 120.5 + i, n = 10 + i } end)
  C["source-polygon-stock-api"] = {
    rewrite = { "https://api.polygon.io/" },
    config = obj{ apiKey = "polykey", stocksTicker = "IBM", multiplier = 1, timespan = "day",
                  start_date = "2020-10-14", end_date = "2020-10-17", adjusted = "true", sort = "asc" },
    routes = { { method = "GET", path = "/v2/aggs/ticker/IBM/range/1/day/2020-10-14/2020-10-17",
                 query = obj{ adjusted = "true", sort = "asc", limit = "120", apiKey = "polykey" },
                 headers = obj{ ["X-CoinAPI-Key"] = "polykey" },
                 responses = { { json = obj{ ticker = "IBM", results = bars, status = "OK" } } } } },
    catalog = "published",
    expected = { stock_api = bars },
  }

  -- confluence: OffsetIncrement by 25 with Basic auth
  local basic = "Basic " .. require("airbyte.declarative.interpolation").base64encode("me@example.com:conf-token")
  local pages = seq(28, function(i) return obj{ id = tostring(1000 + i), title = "Page " .. i, status = "current" } end)
  local page1, page2 = arr(), arr()
  for i, p in ipairs(pages) do if i <= 25 then page1[#page1 + 1] = p else page2[#page2 + 1] = p end end
  local blogs = seq(2, function(i) return obj{ id = tostring(500 + i), title = "Blog " .. i } end)
  local spaces = seq(1, function(i) return obj{ id = 77, key = "ENG", name = "Engineering" } end)
  local cq = function(extra)
    local q = obj{ limit = "25" }
    for k, v in pairs(extra or {}) do q[k] = v end
    return q
  end
  C["source-confluence"] = {
    rewrite = { "https://example.atlassian.net/" },
    config = obj{ email = "me@example.com", api_token = "conf-token", domain_name = "example.atlassian.net" },
    routes = {
      { path = "/wiki/api/v2/pages", query = cq{ start = json.null }, headers = obj{ Authorization = basic },
        responses = { { json = obj{ results = page1 } } } },
      { path = "/wiki/api/v2/pages", query = cq{ start = "25" }, headers = obj{ Authorization = basic },
        responses = { { json = obj{ results = page2 } } } },
      { path = "/wiki/api/v2/blogposts", query = cq{ start = json.null }, headers = obj{ Authorization = basic },
        responses = { { json = obj{ results = blogs } } } },
      { path = "/wiki/api/v2/spaces", query = cq{ start = json.null }, headers = obj{ Authorization = basic },
        responses = { { json = obj{ results = spaces } } } },
      { path = "/wiki/rest/api/group", query = cq{ start = json.null }, headers = obj{ Authorization = basic },
        responses = { { json = obj{ results = arr() } } } },
    },
    catalog = "published",
    expected = { pages = pages, blog_posts = blogs, space = spaces, group = {} },
  }

  -- newsdata: CursorPagination on nextPage, page size in a header
  local news1 = seq(2, function(i) return obj{ article_id = "a" .. i, link = "https://n.example/" .. i, title = "T" .. i } end)
  local news2 = seq(1, function(i) return obj{ article_id = "b" .. i, link = "https://n.example/b" .. i, title = "U" .. i } end)
  local sources = seq(2, function(i) return obj{ id = "src" .. i, name = "Source " .. i, url = "https://s.example/" .. i } end)
  local nh = obj{ ["X-ACCESS-KEY"] = "news-key", ["X-Pagination-Page-Size"] = "10" }
  C["source-newsdata"] = {
    rewrite = { "https://newsdata.io/" },
    config = obj{ api_key = "news-key", country = arr{ "us", "gb" }, language = arr{ "en" }, category = arr{ "science" },
                  domain = arr{ "bbc" } },
    routes = {
      { path = "/api/1/news", query = obj{ country = "us,gb", language = "en", category = "science", domain = "bbc",
                                           page = json.null, q = json.null }, headers = nh,
        responses = { { json = obj{ status = "success", results = news1, nextPage = "cursor-2" } } } },
      { path = "/api/1/news", query = obj{ page = "cursor-2" }, headers = nh,
        responses = { { json = obj{ status = "success", results = news2 } } } },
      { path = "/api/1/sources", query = obj{ country = "us", language = "en", category = "science" },
        headers = obj{ ["X-ACCESS-KEY"] = "news-key" },
        responses = { { json = obj{ status = "success", results = sources } } } },
    },
    catalog = "published",
    expected = { latest = { news1[1], news1[2], news2[1] }, sources = sources },
  }

  -- k6-cloud: organizations -> projects (SubstreamPartitionRouter), PageIncrement from page 0
  local orgs = seq(2, function(i) return obj{ id = i, name = "org" .. i, is_default = i == 1 } end)
  local projects1 = seq(32, function(i) return obj{ id = 100 + i, name = "p" .. i, organization_id = 1 } end)
  local projects1b = seq(1, function(i) return obj{ id = 200 + i, name = "q" .. i, organization_id = 1 } end)
  local projects2 = seq(1, function(i) return obj{ id = 300 + i, name = "r" .. i, organization_id = 2 } end)
  local tests = seq(3, function(i) return obj{ id = 900 + i, name = "test" .. i, project_id = 101 } end)
  local kh = obj{ Authorization = "Bearer k6-token" }
  local expected_projects = {}
  for _, l in ipairs({ projects1, projects1b, projects2 }) do
    for _, p in ipairs(l) do expected_projects[#expected_projects + 1] = p end
  end
  C["source-k6-cloud"] = {
    rewrite = { "https://api.k6.io/" },
    config = obj{ api_token = "k6-token" },
    routes = {
      { path = "/v3/organizations", headers = kh, responses = { { json = obj{ organizations = orgs } } } },
      { path = "/v3/organizations/1/projects", query = obj{ page = json.null }, form = obj{ page_size = "32" },
        headers = kh, responses = { { json = obj{ projects = projects1 } } } },
      -- the strategy's start_from_page defaults to 0: the second page asks for page=1
      { path = "/v3/organizations/1/projects", query = obj{ page = "1" }, headers = kh,
        responses = { { json = obj{ projects = projects1b } } } },
      { path = "/v3/organizations/2/projects", query = obj{ page = json.null }, headers = kh,
        responses = { { json = obj{ projects = projects2 } } } },
      { path = "/loadtests/v2/tests", query = obj{ page = json.null }, headers = kh,
        responses = { { json = obj{ ["k6-tests"] = tests } } } },
    },
    catalog = "published",
    expected = { organizations = orgs, projects = expected_projects, ["k6-tests"] = tests },
  }

  -- sentry: Link-header CursorPagination, Bearer auth, data feeds
  local sh = obj{ Authorization = "Bearer sentry-token" }
  local function link(cursor, more)
    return ('<https://sentry.io/api/0/x/?cursor=%s>; rel="previous"; results="false"; cursor="%s", '
      .. '<https://sentry.io/api/0/x/?cursor=%s>; rel="next"; results="%s"; cursor="%s"')
      :format("0:0:1", "0:0:1", cursor, more and "true" or "false", cursor)
  end
  local events1 = seq(2, function(i) return obj{ id = "e" .. i, eventID = "e" .. i, dateCreated = "2023-01-0" .. i .. "T10:00:00Z" } end)
  local events2 = seq(1, function(i) return obj{ id = "e9", eventID = "e9", dateCreated = "2023-01-05T10:00:00Z" } end)
  local issues = seq(2, function(i) return obj{ id = "i" .. i, lastSeen = "2023-02-0" .. i .. "T00:00:00.000000Z", title = "I" .. i } end)
  local projects = seq(2, function(i) return obj{ id = "p" .. i, slug = "proj" .. i, dateCreated = "2022-0" .. i .. "-01T00:00:00.000000Z" } end)
  local detail = obj{ id = "p1", slug = "proj", name = "Project", dateCreated = "2022-01-01T00:00:00.000000Z" }
  C["source-sentry"] = {
    rewrite = { "https://sentry.io/" },
    config = obj{ auth_token = "sentry-token", organization = "acme", project = "proj", hostname = "sentry.io" },
    routes = {
      { path = "/api/0/projects/acme/proj/events/", query = obj{ full = "true", cursor = json.null }, headers = sh,
        responses = { { json = events1, headers = obj{ Link = link("c2", true) } } } },
      { path = "/api/0/projects/acme/proj/events/", query = obj{ full = "true", cursor = "c2" }, headers = sh,
        responses = { { json = events2, headers = obj{ Link = link("c3", false) } } } },
      { path = "/api/0/projects/acme/proj/issues/", query = obj{ query = "lastSeen:>1900-01-01T00:00:00.000000Z" },
        headers = sh, responses = { { json = issues, headers = obj{ Link = link("c2", false) } } } },
      { path = "/api/0/projects/acme/proj/", headers = sh, responses = { { json = detail } } },
      { path = "/api/0/organizations/acme/projects/", headers = sh,
        responses = { { json = projects, headers = obj{ Link = link("c2", false) } } } },
    },
    catalog = "published",
    expected = { events = { events1[1], events1[2], events2[1] }, issues = issues, project_detail = { detail },
                 projects = projects },
  }

  -- finnhub: ListPartitionRouter over config.symbols, incremental slices with from/to, AddFields
  local symbols = { "AAPL", "MSFT" }
  local froutes, fexp = {}, {}
  local function fr(path, field_path, stream, mk, query)
    fexp[stream] = {}
    for _, sym in ipairs(symbols) do
      local recs = seq(2, function(i) return mk(sym, i) end)
      local q = obj{ symbol = sym, token = "finn-key" }
      for k, v in pairs(query or {}) do q[k] = v end
      froutes[#froutes + 1] = { path = "/api/v1" .. path, query = q,
                                responses = { { json = field_path and obj{ [field_path] = recs, symbol = sym } or recs } } }
      for _, r in ipairs(recs) do table.insert(fexp[stream], r) end
    end
  end
  fr("/stock/financials-reported", "data", "basic_financial_report",
     function(s, i) return obj{ symbol = s, accessNumber = s .. i, startDate = "2023-0" .. i .. "-01 00:00:00", year = 2023 } end)
  fr("/stock/profile2", nil, "company_profile", function(s, i) return obj{ ticker = s, name = s .. " Inc " .. i } end)
  fr("/stock/filings", nil, "sec_filings",
     function(s, i) return obj{ symbol = s, accessNumber = "f" .. s .. i, filedDate = "2023-0" .. i .. "-02 00:00:00" } end)
  fr("/stock/insider-transactions", "data", "insider_transactions",
     function(s, i) return obj{ symbol = s, name = "x" .. i, transactionDate = "2023-0" .. i .. "-03", filingDate = "2023-0" .. i .. "-03" } end)
  fr("/stock/insider-sentiment", "data", "insider_sentiment",
     function(s, i) return obj{ symbol = s, year = 2023, month = i, change = i * 10 } end)
  fr("/company-news", nil, "company_news",
     function(s, i) return obj{ id = i * 100 + #s, related = s, headline = "h" .. i, datetime = 1672531200 + i * 86400 } end)
  fr("/stock/recommendation", nil, "stock_recommendations",
     function(s, i) return obj{ symbol = s, period = "2023-0" .. i .. "-01", buy = i } end)
  fr("/stock/earnings", nil, "earnings_surprises",
     function(s, i) return obj{ symbol = s, period = "2023-0" .. i .. "-01", actual = i + 0.5 } end)
  -- stock_quote: one object per symbol, `symbol` added by AddFields
  fexp.stock_quote = {}
  for _, sym in ipairs(symbols) do
    local q = obj{ c = 100.5, h = 101.25, l = 99.75, o = 100.0 + #sym, pc = 99.5, t = 1700000000 }
    froutes[#froutes + 1] = { path = "/api/v1/quote", query = obj{ symbol = sym, token = "finn-key" }, responses = { { json = q } } }
    local e = obj{}
    for k, v in pairs(q) do e[k] = v end
    e.symbol = sym
    table.insert(fexp.stock_quote, e)
  end
  local market = seq(2, function(i) return obj{ id = i, category = "general", headline = "m" .. i, datetime = 1700000000 + i } end)
  froutes[#froutes + 1] = { path = "/api/v1/news", query = obj{ token = "finn-key" }, responses = { { json = market } } }
  fexp.marketnews = market
  local syms = seq(2, function(i) return obj{ symbol = symbols[i], description = symbols[i] .. " corp", type = "Common Stock" } end)
  froutes[#froutes + 1] = { path = "/api/v1/stock/symbol", query = obj{ exchange = "US", token = "finn-key" },
                            responses = { { json = syms } } }
  fexp.stock_symbols = syms
  local fcat = {}
  for _, n in ipairs({ "marketnews", "stock_symbols", "basic_financial_report", "company_profile", "sec_filings",
                       "insider_transactions", "insider_sentiment", "company_news", "stock_recommendations",
                       "earnings_surprises", "stock_quote" }) do
    fcat[#fcat + 1] = { n }
  end
  C["source-finnhub"] = {
    rewrite = { "https://finnhub.io/" },
    config = obj{ api_key = "finn-key", symbols = arr{ "AAPL", "MSFT" }, market_news_category = "general", exchange = "US",
                  start_date_2 = "2023-01-01T00:00:00Z" },
    routes = froutes,
    catalog = M.catalog(fcat),
    expected = fexp,
  }

  -- alpha-vantage: `quote` is pure YAML; the other streams need components.py
  C["source-alpha-vantage"] = {
    rewrite = { "https://www.alphavantage.co/" },
    config = obj{ api_key = "av-key", symbol = "IBM", interval = "60min", outputsize = "compact" },
    routes = {
      { path = "/query", query = obj{ ["function"] = "GLOBAL_QUOTE", symbol = "IBM", apikey = "av-key", datatype = "json",
                                      adjusted = "false", interval = "60min", outputsize = "compact" },
        responses = { { body_file = mdir .. "/source-alpha-vantage/unit_tests/resource/http/response/global_quote.json" } } },
    },
    catalog = M.catalog{ { "quote" } },
    expected = { quote = { json.decode(read(mdir .. "/source-alpha-vantage/unit_tests/resource/http/response/global_quote.json")) } },
    custom_streams = { "time_series_intraday", "time_series_daily", "time_series_daily_adjusted", "time_series_weekly",
                       "time_series_weekly_adjusted", "time_series_monthly", "time_series_monthly_adjusted" },
  }

  -- nasa: the published records, one P1M window after another from start_date
  local nasa = M.published_records(mdir .. "/source-nasa")
  C["source-nasa"] = {
    rewrite = { "https://api.nasa.gov/" },
    config = json.decode(read(mdir .. "/source-nasa/integration_tests/config.json")),
    routes = {
      { path = "/planetary/apod", query = obj{ api_key = "DEMO_KEY", start_date = "2022-09-10" },
        responses = { { json = arr(nasa.nasa_apod) } } },
      { path = "/planetary/apod", query = obj{ api_key = "DEMO_KEY" }, responses = { { json = arr() } } },
    },
    catalog = "published",
    expected = nasa,
    incremental = "nasa_apod",
  }

  -- strava: OAuth refresh (rotating refresh token), athlete stats, activities after=<epoch>
  local strava = M.published_records(mdir .. "/source-strava")
  local start_epoch = "1451606400"   -- 2016-01-01T00:00:00Z
  C["source-strava"] = {
    rewrite = { "https://www.strava.com/" },
    config = obj{ client_id = "12345", client_secret = "abcdef0123", refresh_token = "aaaa1111", athlete_id = 17831421,
                  start_date = "2016-01-01T00:00:00Z" },
    routes = {
      { method = "POST", path = "/oauth/token",
        form = obj{ grant_type = "refresh_token", client_id = "12345", client_secret = "abcdef0123", refresh_token = "aaaa1111" },
        responses = { { json = obj{ access_token = "strava-access-1", expires_in = 21600, refresh_token = "bbbb2222",
                                    token_type = "Bearer" } } } },
      { path = "/api/v3/athletes/17831421/stats", headers = obj{ Authorization = "Bearer strava-access-1" },
        responses = { { json = strava.athlete_stats[1] } } },
      { path = "/api/v3/athlete/activities", query = obj{ after = start_epoch, per_page = "30", page = json.null },
        headers = obj{ Authorization = "Bearer strava-access-1" }, responses = { { json = arr(strava.activities) } } },
    },
    catalog = "published",
    expected = strava,
    incremental = "activities",
  }

  -- open-exchange-rates: one day per sync, state in epoch seconds
  local oer = M.published_records(mdir .. "/source-open-exchange-rates")
  C["source-open-exchange-rates"] = {
    rewrite = { "https://openexchangerates.org/" },
    config = obj{ app_id = "oer-app", start_date = "2023-08-01", base = "USD" },
    routes = {
      { path = "/api/historical/2023-08-01.json", query = obj{ app_id = "oer-app", base = "USD" },
        responses = { { json = oer.open_exchange_rates[1] } } },
    },
    catalog = "published",
    expected = oer,
    incremental = "open_exchange_rates",
  }
  return C
end

return M
