-- airbyte.http: real requests to the scripted local server
-- (tests/fixtures/http/server.py) run as a real process.
local H = require "helper"
local server = require "http_server"
local http = require "airbyte.http"
local core = require "airbyte.core"
local errors = require "airbyte.errors"

local CERT = H.fixtures .. "/http/tls-cert.pem"
local KEY = H.fixtures .. "/http/tls-key.pem"

-- A port nothing listens on: one a server had and gave back.
local function closed_port()
  local s = server.start{ { path = "/", responses = { {} } } }
  local port = s.port
  s:stop()
  return port
end

local function transport_error(opts)
  local ok, e = pcall(http.request, opts)
  assert.is_false(ok)
  assert.is_true(errors.is(e, "AirbyteConnectorError"), "expected a structured error, got " .. tostring(e))
  return e
end

describe("airbyte.http", function()
  local srv
  after_each(function()
    if srv then srv:stop() srv = nil end
  end)

  describe("url_encode and query", function()
    it("percent-encodes everything but RFC 3986 unreserved characters", function()
      assert.equal("a-b_c.d~e", http.url_encode("a-b_c.d~e"))
      assert.equal("a%20b%2Fc%3Fd%3D%26%2B%25", http.url_encode("a b/c?d=&+%"))
      assert.equal("%C3%A9%00x", http.url_encode("\xc3\xa9\0x"))
      assert.equal("", http.url_encode(""))
    end)

    it("builds a query with sorted keys, lists repeating their key", function()
      assert.equal("a=1&b=x%20y&c=true&d=1.5", http.query{ d = 1.5, c = true, b = "x y", a = 1 })
      assert.equal("ids=3&ids=1&q=%26", http.query{ q = "&", ids = { 3, 1 } })
      assert.equal("", http.query{})
      assert.has_error(function() http.query{ a = print } end,
        "query value of 'a' must be a string, number, boolean or a list of them")
    end)
  end)

  describe("requests", function()
    it("sends GET with headers and returns status, lower-case headers, body and url", function()
      srv = server.start{
        { method = "GET", path = "/items", query = { page = "2" }, headers = { Authorization = "Bearer t0k" },
          responses = { { status = 200, headers = { ["X-Total"] = "7", ["Set-Cookie"] = { "a=1", "b=2" } },
                          json = { items = { 1, 2 } } } } },
      }
      local resp = http.request{ url = srv.base .. "/items?page=2",
                                 headers = { Authorization = "Bearer t0k", ["X-Trace"] = "abc" } }
      assert.equal(200, resp.status)
      assert.equal('{"items": [1, 2]}', resp.body)
      assert.equal("application/json", resp.headers["content-type"])
      assert.equal("7", resp.headers["x-total"])
      assert.equal("a=1, b=2", resp.headers["set-cookie"])
      assert.equal(srv.base .. "/items?page=2", resp.url)
      local log = srv:requests()
      assert.equal(1, #log)
      assert.equal("GET", log[1].method)
      assert.equal("Bearer t0k", log[1].headers.authorization)
      assert.equal("abc", log[1].headers["x-trace"])
      assert.matches("^luabyte/", log[1].headers["user-agent"])
    end)

    it("sends a POST body as given, with no Content-Type unless one is set", function()
      srv = server.start{
        { method = "POST", path = "/raw", responses = { { status = 201, body = "made" } } },
        { method = "POST", path = "/json", json = { name = "x" }, responses = { { body = "json ok" } } },
        { method = "POST", path = "/form", form = { grant_type = "refresh_token" }, responses = { { body = "form ok" } } },
      }
      local resp = http.request{ method = "POST", url = srv.base .. "/raw", body = "a\0b" }
      assert.equal(201, resp.status)
      assert.equal("made", resp.body)
      resp = http.request{ method = "post", url = srv.base .. "/json", body = '{"name":"x","n":1}',
                           headers = { ["Content-Type"] = "application/json" } }
      assert.equal("json ok", resp.body)
      resp = http.request{ method = "POST", url = srv.base .. "/form",
                           body = http.query{ grant_type = "refresh_token", refresh_token = "r t" },
                           headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }
      assert.equal("form ok", resp.body)
      resp = http.request{ method = "POST", url = srv.base .. "/raw" }   -- no body: Content-Length 0
      assert.equal(201, resp.status)
      local log = srv:requests()
      assert.equal("a\0b", log[1].body)
      assert.is_nil(log[1].headers["content-type"])
      assert.equal("3", log[1].headers["content-length"])
      assert.equal("application/json", log[2].headers["content-type"])
      assert.equal("grant_type=refresh_token&refresh_token=r%20t", log[3].body)
      assert.equal("0", log[4].headers["content-length"])
      assert.is_nil(log[1].headers.expect)
    end)

    it("sends PUT, PATCH, DELETE and HEAD", function()
      srv = server.start{
        { method = "PUT", path = "/r", responses = { { body = "put" } } },
        { method = "PATCH", path = "/r", responses = { { body = "patch" } } },
        { method = "DELETE", path = "/r", responses = { { status = 204 } } },
        { method = "HEAD", path = "/r", responses = { { headers = { ["X-Head"] = "1" } } } },
      }
      assert.equal("put", http.request{ method = "PUT", url = srv.base .. "/r", body = "v" }.body)
      assert.equal("patch", http.request{ method = "PATCH", url = srv.base .. "/r", body = "v" }.body)
      assert.equal(204, http.request{ method = "DELETE", url = srv.base .. "/r" }.status)
      local head = http.request{ method = "HEAD", url = srv.base .. "/r" }
      assert.equal(200, head.status)
      assert.equal("1", head.headers["x-head"])
      assert.equal("", head.body)
      local log = srv:requests()
      assert.same({ "PUT", "PATCH", "DELETE", "HEAD" }, { log[1].method, log[2].method, log[3].method, log[4].method })
      assert.equal("v", log[1].body)
    end)

    it("appends the query option to the url, encoded and sorted", function()
      srv = server.start{ { path = "/q", responses = { { body = "ok" } } } }
      http.request{ url = srv.base .. "/q", query = { b = "x y", a = { 1, 2 } } }
      http.request{ url = srv.base .. "/q?fixed=1", query = { z = "&" } }
      local log = srv:requests()
      assert.equal("a=1&a=2&b=x%20y", log[1].raw_query)
      assert.equal("fixed=1&z=%26", log[2].raw_query)
    end)

    it("decodes a gzip body and says it accepts gzip", function()
      local big = ("0123456789"):rep(1000)
      srv = server.start{ { path = "/gz", responses = { { body = big, gzip = true } } } }
      local resp = http.request{ url = srv.base .. "/gz" }
      assert.equal(200, resp.status)
      assert.equal(big, resp.body)
      assert.equal("gzip", resp.headers["content-encoding"])
      assert.is_true(tonumber(resp.headers["content-length"]) < #big)
      assert.matches("gzip", srv:requests()[1].headers["accept-encoding"])
    end)

    it("returns error statuses as responses, in the order the server scripts them", function()
      srv = server.start{
        { path = "/flaky", responses = {
          { status = 429, headers = { ["Retry-After"] = "1" }, body = "slow down" },
          { status = 500, body = "oops" },
          { status = 200, json = { ok = true } } } },
      }
      local r1 = http.request{ url = srv.base .. "/flaky" }
      assert.equal(429, r1.status)
      assert.equal("1", r1.headers["retry-after"])
      assert.equal("slow down", r1.body)
      local r2 = http.request{ url = srv.base .. "/flaky" }
      assert.equal(500, r2.status)
      assert.equal(200, http.request{ url = srv.base .. "/flaky" }.status)
      assert.equal(200, http.request{ url = srv.base .. "/flaky" }.status)   -- the last one repeats
      assert.equal(404, http.request{ url = srv.base .. "/nowhere" }.status)
    end)

    it("follows redirects unless told not to, and reports the effective url", function()
      srv = server.start{
        { path = "/old", responses = { { status = 302, headers = { Location = "/new" } } } },
        { path = "/new", responses = { { body = "moved here" } } },
      }
      local resp = http.request{ url = srv.base .. "/old" }
      assert.equal(200, resp.status)
      assert.equal("moved here", resp.body)
      assert.equal(srv.base .. "/new", resp.url)
      local no = http.request{ url = srv.base .. "/old", follow_redirects = false }
      assert.equal(302, no.status)
      assert.equal("/new", no.headers.location)
    end)

    it("reuses the connection for requests to the same server", function()
      srv = server.start{ { path = "/a", responses = { { body = "a" } } } }
      for _ = 1, 3 do http.request{ url = srv.base .. "/a" } end
      local log = srv:requests()
      assert.equal(3, #log)
      assert.equal(log[1].client_port, log[2].client_port)
      assert.equal(log[1].client_port, log[3].client_port)
    end)
  end)

  describe("transport failures", function()
    it("raises a structured error naming the url, with the credentials masked, on a refused port", function()
      local port = closed_port()
      local e = transport_error{ url = ("http://user:s3cret@127.0.0.1:%d/x?y=1"):format(port) }
      assert.equal("AirbyteConnectorError", e.kind)
      assert.equal(7, e.curl_code)
      assert.equal("connect", e.reason)
      assert.equal("GET", e.method)
      assert.equal(("http://***@127.0.0.1:%d/x?y=1"):format(port), e.url)
      assert.matches("127.0.0.1:" .. port .. "/x", e.message, 1, true)
      assert.not_matches("s3cret", tostring(e))
      assert.not_matches("user", e.message)
    end)

    it("times out a response that does not come", function()
      srv = server.start{ { path = "/never", responses = { { delay_ms = 20000, body = "late" } } } }
      local e = transport_error{ url = srv.base .. "/never", timeout_ms = 300 }
      assert.equal(28, e.curl_code)
      assert.equal("timeout", e.reason)
      assert.matches("timed out", e.message)
      assert.matches("/never", e.message)
    end)

    it("stops a body larger than max_body", function()
      srv = server.start{ { path = "/big", responses = { { body = ("x"):rep(100000) } } } }
      local e = transport_error{ url = srv.base .. "/big", max_body = 1000 }
      assert.equal("too_large", e.reason)
      assert.matches("max_body %(1000 bytes%)", e.message)
      assert.equal(100000, #http.request{ url = srv.base .. "/big", max_body = 100000 }.body)
    end)

    it("reports a connection closed without an answer", function()
      srv = server.start{ { path = "/drop", responses = { { drop = true } } } }
      local e = transport_error{ url = srv.base .. "/drop" }
      assert.equal("connection", e.reason)
      assert.equal(52, e.curl_code)      -- CURLE_GOT_NOTHING
    end)

    it("refuses other protocols", function()
      local e = transport_error{ url = "file:///etc/passwd" }
      assert.equal("url", e.reason)
      assert.equal(1, e.curl_code)       -- CURLE_UNSUPPORTED_PROTOCOL
    end)

    it("verifies TLS certificates: an untrusted one fails, the same one trusted by ca_file works", function()
      local dir = H.tmpdir()
      H.write_file(dir .. "/routes.json", '[{"path": "/s", "responses": [{"body": "secure"}]}]')
      local proc = require "airbyte.process"
      local p = assert(proc.spawn{ argv = { "python3", server.script, dir .. "/routes.json", dir .. "/log",
                                            "--tls", CERT, KEY }, name = "https-server" })
      local port = p:read_line()
      local url = "https://127.0.0.1:" .. port .. "/s"
      local ok, err = pcall(function()
        local e = transport_error{ url = url }
        assert.equal("tls", e.reason)
        assert.equal(60, e.curl_code)    -- CURLE_PEER_FAILED_VERIFICATION
        local resp = http.request{ url = url, ca_file = CERT }
        assert.equal("secure", resp.body)
        assert.equal(200, resp.status)
      end)
      p:kill()
      p:wait()
      H.rm_rf(dir)
      if not ok then error(err, 0) end
    end)
  end)

  describe("misuse", function()
    it("raises plain errors for bad options", function()
      assert.has_error(function() http.request{} end, "http.request: 'url' must be a string")
      assert.has_error(function() http.request{ url = "http://x/a b" } end)
      assert.has_error(function() http.request{ url = "http://x/", method = "GE T" } end,
        "http.request: invalid method 'GE T'")
      assert.has_error(function() http.request{ url = "http://x/", headers = { ["X-A"] = "a\r\nX-B: b" } } end,
        "http.request: header 'X-A' contains a line break or NUL")
      assert.has_error(function() http.request{ url = "http://x/", headers = { ["Bad Name"] = "v" } } end,
        "http.request: invalid header name 'Bad Name'")
      assert.has_error(function() http.request{ url = "http://x/", timeout_ms = -1 } end,
        "http.request: 'timeout_ms' must not be negative")
      assert.has_error(function() http.request{ url = "http://x/", body = {} } end,
        "http.request: 'body' must be a string")
    end)

    it("raises where a task cannot wait (a C function calling back into Lua)", function()
      srv = server.start{ { path = "/a", responses = { { body = "a" } } } }
      local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)
        http.request{ url = srv.base .. "/a" }
        return a < b
      end)
      assert.is_false(ok)
      assert.matches("http.request%(%) is not allowed here", tostring(err))
      assert.equal(0, #srv:requests())
    end)
  end)

  describe("on the loop", function()
    it("runs many requests from several tasks at once, while another task keeps running", function()
      local N = 12
      -- every request is held until all N are in flight together: done one
      -- after the other, they could never be answered
      srv = server.start{ { path = "/slow", responses = { { barrier = N, body = "together" } } } }
      local ticks, stop = 0, false
      local ticker = core.spawn(function()
        while not stop do
          ticks = ticks + 1
          core.sleep(5)
        end
      end)
      local tasks, seen = {}, {}
      for i = 1, 4 do
        tasks[i] = core.spawn(function()
          local inner = {}
          for j = 1, N / 4 do
            inner[j] = core.spawn(function()
              local before = ticks
              local r = http.request{ url = srv.base .. "/slow?i=" .. i .. "&j=" .. j, timeout_ms = 60000 }
              seen[#seen + 1] = ticks - before
              return r.status, r.body
            end)
          end
          local out = {}
          for j = 1, #inner do
            local status, body = inner[j]:wait()
            out[#out + 1] = status .. " " .. body
          end
          return out
        end)
      end
      for i = 1, 4 do
        for _, line in ipairs(tasks[i]:wait()) do assert.equal("200 together", line) end
      end
      stop = true
      ticker:wait()
      assert.equal(N, #seen)
      -- the ticker went on while each request waited for the others
      for _, d in ipairs(seen) do assert.is_true(d > 0) end
      assert.equal(N, #srv:requests())
    end)

    it("cancels a task waiting on a request; the next requests still work", function()
      srv = server.start{
        { path = "/hang", responses = { { delay_ms = 20000, body = "late" } } },
        { path = "/ok", responses = { { body = "fine" } } },
      }
      local t = core.spawn(function() return http.request{ url = srv.base .. "/hang" } end)
      assert.is_true(H.wait_until(function() return #srv:requests() == 1 end, 30000))
      assert.equal("waiting", t:status())
      t:cancel()
      assert.equal("cancelled", t:status())
      collectgarbage()
      assert.equal("fine", http.request{ url = srv.base .. "/ok" }.body)
    end)

    it("leaks nothing when a request is cancelled mid-flight (checked under ASan)", function()
      srv = server.start{ { path = "/hang", responses = { { delay_ms = 20000, body = "late" } } },
                          { path = "/ok", responses = { { body = "fine" } } } }
      local code = ([[
        local http = require "airbyte.http"
        local core = require "airbyte.core"
        local base = %q
        local t = core.spawn(function() return http.request{ url = base .. "/hang" } end)
        core.sleep(200)
        t:cancel()
        assert(t:status() == "cancelled")
        assert(http.request{ url = base .. "/ok" }.body == "fine")
      ]]):format(srv.base)
      local out, status, sig, p = H.run({ H.exe, "-e", code }, { env = { ASAN_OPTIONS = "detect_leaks=1" } })
      local tail = table.concat(p:tail(), "\n")
      assert.is_nil(sig, tail)
      assert.equal(0, status, tail)
      assert.not_matches("Sanitizer", tail)
      assert.equal("", out)
    end)

    it("finishes every one of many quick requests on a kept-alive connection", function()
      -- a transfer that curl completes in the loop's first timer run must
      -- still wake its task: run in a child so a hang fails, not blocks
      srv = server.start{
        { method = "PUT", path = "/r", responses = { { body = "put" } } },
        { method = "PATCH", path = "/r", responses = { { body = "patch" } } },
        { method = "DELETE", path = "/r", responses = { { status = 204 } } },
        { method = "HEAD", path = "/r", responses = { { headers = { ["X-Head"] = "1" } } } },
      }
      local code = ([[
        local http = require "airbyte.http"
        local core = require "airbyte.core"
        -- something else keeps the loop alive, as a real pipeline has
        local other = core.spawn(function() core.sleep(3600 * 1000) end)
        for i = 1, 250 do
          for _, m in ipairs{ "PUT", "PATCH", "DELETE", "HEAD" } do
            http.request{ method = m, url = %q, body = (m == "PUT" or m == "PATCH") and "v" or nil,
                          timeout_ms = 60000 }
          end
        end
        other:cancel()
        io.write("all done")
      ]]):format(srv.base .. "/r")
      local out, status, _, p = H.run({ H.exe, "-e", code }, { timeout = 60000 })
      assert.equal(0, status, "hung (killed after 60 s) or failed: " .. table.concat(p:tail(), "\n"))
      assert.equal("all done", out)
      assert.equal(1000, #srv:requests())
    end)

    it("goes through the proxy the environment names", function()
      srv = server.start{ { path = "/via", responses = { { body = "proxied" } } } }
      local code = [[
        local http = require "airbyte.http"
        io.write(http.request{ url = "http://api.example.invalid/via?x=1" }.body)
      ]]
      local out, status, _, p = H.run({ H.exe, "-e", code },
        { env = { http_proxy = srv.base, no_proxy = false, NO_PROXY = false } })
      assert.equal(0, status, table.concat(p:tail(), "\n"))
      assert.equal("proxied", out)
      local log = srv:requests()
      assert.equal("api.example.invalid", log[1].headers.host)
      assert.equal("x=1", log[1].raw_query)
    end)
  end)
end)
