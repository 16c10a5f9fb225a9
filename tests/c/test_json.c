/*
** test_json.c - the airbyte.json module (lua_json.c over record.c):
** round trips, BigInt, floats, empty array vs object, strings, errors,
** and an allocator that fails part way through encoding.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lb_internal.h"
#include "jskim.h"
#include "record.h"
#include "digest.h"
#include "textbuf.h"
#include "lbtest.h"

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "airbyte.json", luaopen_airbyte_json, 0);
  lua_setglobal(L, "json");
  return L;
}

/* Run a chunk; a failed assert() fails the check and prints why. */
#define RUN(L, code) do {                                                   \
  if (luaL_dostring(L, code) != LUA_OK) {                                   \
    lbt_failed_checks++;                                                    \
    fprintf(stderr, "  FAIL %s:%d (%s): %s\n", __FILE__, __LINE__,          \
            lbt_current, lua_tostring(L, -1));                              \
  }                                                                         \
  lua_settop(L, 0);                                                         \
} while (0)

static void test_integers(void) {
  lua_State *L = new_state();
  RUN(L, "local v = json.decode('1') assert(v == 1 and math.type(v) == 'integer')");
  RUN(L, "local v = json.decode('-0') assert(v == 0 and math.type(v) == 'integer')");
  RUN(L, "assert(json.decode('9223372036854775807') == math.maxinteger)");
  RUN(L, "assert(json.decode('-9223372036854775808') == math.mininteger)");
  RUN(L, "assert(json.encode(math.maxinteger) == '9223372036854775807')");
  RUN(L, "assert(json.encode(math.mininteger) == '-9223372036854775808')");
  RUN(L, "assert(json.encode(0) == '0' and json.encode(-42) == '-42')");
  RUN(L, "assert(json.encode(json.decode('[1669682107441]')) == '[1669682107441]')");
  lua_close(L);
}

static void test_bigint(void) {
  lua_State *L = new_state();
  RUN(L, "local v = json.decode('9223372036854775808')\n"
         "assert(json.is_bigint(v) and type(v) == 'userdata')\n"
         "assert(tostring(v) == '9223372036854775808')\n"
         "assert(json.encode(v) == '9223372036854775808')\n"
         "assert(v > math.maxinteger and math.maxinteger < v)\n"
         "assert(v < 1e19 and v > 9.2e18 and not (v < 9.2e18))\n"
         "assert(v == json.bigint('9223372036854775808'))\n"
         "assert(v ~= json.bigint('9223372036854775809'))\n"
         "assert(v:tonumber() == 9223372036854775808.0 and math.type(v:tonumber()) == 'float')");
  RUN(L, "local s = '99999999999999999999'\n"
         "local v = json.decode(s)\n"
         "assert(json.is_bigint(v) and tostring(v) == s and json.encode(v) == s)\n"
         "assert(json.encode(json.decode('[' .. s .. ',-' .. s .. ']')) == '[' .. s .. ',-' .. s .. ']')\n"
         "local n = json.decode('-9223372036854775809')\n"
         "assert(json.is_bigint(n) and n < math.mininteger and tostring(n) == '-9223372036854775809')");
  RUN(L, "local t = json.decode('{\"id\":123456789012345678901234567890}')\n"
         "assert(json.encode(t) == '{\"id\":123456789012345678901234567890}')");
  /* comparisons with every kind of number */
  RUN(L, "local b = json.bigint\n"
         "assert(b('-5') < b('3') and b('-10') < b('-9') and not (b('-9') < b('-10')))\n"
         "assert(b('3') < 3.5 and b('3') > 2.5 and b('-3') < -2.5 and b('-3') > -3.5)\n"
         "assert(b('3') <= 3.0 and b('3') >= 3.0 and not (b('3') < 3.0))\n"
         "assert(b('3') <= 3 and b('3') >= 3 and not (b('3') < 3) and b('4') > 3)\n"
         "assert(b('0') > -0.5 and b('0') < 0.5 and b('0') <= -0.0)\n"
         "assert(b('1') < math.huge and b('1') > -math.huge)\n"
         "assert(not (b('1') < 0/0) and not (b('1') >= 0/0))\n"
         "assert(b('100000000000000000000') > b('99999999999999999999'))\n"
         "assert(b('-100000000000000000000') < b('-99999999999999999999'))\n"
         "assert(b('1') ~= 1)  -- Lua calls __eq only for two userdata\n"
         "assert(not json.is_bigint(1) and not json.is_bigint('1') and not json.is_bigint(io.stdout))\n"
         "assert(b('1') ~= io.stdout)");
  RUN(L, "assert(tostring(json.bigint('00012')) == '12')\n"
         "assert(tostring(json.bigint('-0')) == '0')\n"
         "assert(tostring(json.bigint('-000')) == '0')\n"
         "assert(tostring(json.bigint('-007')) == '-7')\n"
         "assert(tostring(json.bigint(42)) == '42')\n"
         "assert(tostring(json.bigint(math.mininteger)) == '-9223372036854775808')\n"
         "local x = json.bigint('5'); assert(json.bigint(x) == x)\n"
         "for _, bad in ipairs({'abc', '', '-', '1.5', '1e5', ' 1', '+1', '0x10'}) do\n"
         "  assert(not pcall(json.bigint, bad), bad)\n"
         "end\n"
         "assert(not pcall(json.bigint, {}))\n"
         "assert(not pcall(function() return json.bigint('1') < 'x' end))");
  lua_close(L);
}

static void test_floats(void) {
  lua_State *L = new_state();
  RUN(L, "local v = json.decode('0.1') assert(v == 0.1 and math.type(v) == 'float')");
  RUN(L, "assert(json.encode(0.1) == '0.1')");
  RUN(L, "assert(json.encode(1e300) == '1e+300')");
  RUN(L, "assert(json.encode(1.0) == '1.0' and json.encode(-2.0) == '-2.0')");
  RUN(L, "assert(json.encode(-0.0) == '-0.0')");
  RUN(L, "assert(json.encode(100.0) == '100.0' and json.encode(1.5) == '1.5')");
  RUN(L, "assert(json.encode(2^53) == '9007199254740992.0')");
  RUN(L, "assert(json.decode(json.encode(5e-324)) == 5e-324)");
  RUN(L, "local v = json.decode('1.5e3') assert(v == 1500.0 and math.type(v) == 'float')");
  RUN(L, "local v = json.decode('1E2') assert(math.type(v) == 'float')");
  RUN(L, "for _, x in ipairs({1/3, 2/3, 0.1 + 0.2, 123456.789, 1e-7, 1.7976931348623157e308,\n"
         "                      2.2250738585072014e-308, -1e21, 1e21, 3.14159}) do\n"
         "  local s = json.encode(x)\n"
         "  assert(json.decode(s) == x and math.type(json.decode(s)) == 'float', s)\n"
         "end");
  RUN(L, "math.randomseed(7)\n"
         "for i = 1, 20000 do\n"
         "  local x = (math.random() - 0.5) * 10 ^ math.random(-300, 300)\n"
         "  local s = json.encode(x)\n"
         "  assert(json.decode(s) == x, s)\n"
         "end");
  RUN(L, "assert(not pcall(json.encode, 0/0))\n"
         "assert(not pcall(json.encode, math.huge))\n"
         "assert(not pcall(json.encode, {x = -math.huge}))");
  /* the writer the kit and the cache feed share, as airbyte.json exposes it */
  RUN(L, "assert(json.number(1.1) == '1.1' and json.number(1.0) == '1.0' and json.number(-0.0) == '-0.0')");
  RUN(L, "assert(json.number(0.1 + 0.2) == '0.30000000000000004' and json.number(3) == '3')");
  RUN(L, "assert(json.number(0/0) == nil and json.number(math.huge) == nil)");
  RUN(L, "assert(json.number(json.bigint('12345678901234567890')) == '12345678901234567890')");
  RUN(L, "local s = 'plain \\195\\169' assert(json.escape(s) == s)");
  RUN(L, "assert(json.escape('a\"b\\\\c\\n\\0') == 'a\\\\\"b\\\\\\\\c\\\\n\\\\u0000')");
  lua_close(L);
}

static void test_structures(void) {
  lua_State *L = new_state();
  RUN(L, "local t = json.decode(' { \"a\" : [ 1 , { \"b\" : null } ] , \"c\" : \"x\" , \"d\" : [true,false] } ')\n"
         "assert(t.a[1] == 1 and t.a[2].b == json.null and t.c == 'x')\n"
         "assert(t.d[1] == true and t.d[2] == false and #t.a == 2)\n"
         "assert(json.encode(t) == '{\"a\":[1,{\"b\":null}],\"c\":\"x\",\"d\":[true,false]}')");
  RUN(L, "assert(json.encode({b = 1, a = 2, c = {z = 1, y = 2}}) == '{\"a\":2,\"b\":1,\"c\":{\"y\":2,\"z\":1}}')");
  RUN(L, "assert(json.encode({1, 2, 3}) == '[1,2,3]')\n"
         "assert(json.encode({1, 2, nil, 4}) == '{\"1\":1,\"2\":2,\"4\":4}')\n"
         "assert(json.encode({[1] = 1, x = 2}) == '{\"1\":1,\"x\":2}')\n"
         "assert(json.encode({[0] = 1}) == '{\"0\":1}')\n"
         "assert(json.encode({[-1] = 1}) == '{\"-1\":1}')\n"
         "assert(json.encode({[10] = 1, [2] = 2}) == '{\"10\":1,\"2\":2}')\n"
         "assert(not pcall(json.encode, {[1.5] = 1}))\n"
         "assert(not pcall(json.encode, {[true] = 1}))\n"
         "assert(not pcall(json.encode, {[1] = 1, ['1'] = 2, x = 3}))");
  RUN(L, "assert(json.encode(json.null) == 'null' and json.encode(nil) == 'null')\n"
         "assert(json.encode({json.null, 1}) == '[null,1]')\n"
         "assert(json.decode('null') == json.null and type(json.null) == 'userdata')\n"
         "assert(json.encode(true) == 'true' and json.encode(false) == 'false')");
  /* keys decode to strings; duplicate keys: the last wins */
  RUN(L, "local t = json.decode('{\"1\":\"a\",\"k\":1,\"k\":2}')\n"
         "assert(t['1'] == 'a' and t[1] == nil and t.k == 2)");
  /* many elements (the array index grows) */
  RUN(L, "local t = {} for i = 1, 5000 do t[i] = i * 2 end\n"
         "local s = json.encode(t)\n"
         "local u = json.decode(s)\n"
         "assert(#u == 5000 and u[5000] == 10000 and json.encode(u) == s)\n"
         "local o = {} for i = 1, 300 do o['k' .. i] = {i} end\n"
         "assert(json.encode(json.decode(json.encode(o))) == json.encode(o))");
  lua_close(L);
}

static void test_empty(void) {
  lua_State *L = new_state();
  RUN(L, "assert(json.encode(json.decode('[]')) == '[]')\n"
         "assert(json.encode(json.decode('{}')) == '{}')\n"
         "assert(json.encode({}) == '{}')\n"
         "assert(json.encode(json.array({})) == '[]')\n"
         "assert(getmetatable(json.decode('[]')) == json.array_mt)\n"
         "assert(getmetatable(json.decode('[1]')) == json.array_mt)\n"
         "assert(getmetatable(json.decode('{}')) == json.object_mt)\n"
         "assert(getmetatable(json.decode('{\"a\":1}')) == nil)\n"
         "assert(json.encode(json.decode('{\"a\":[],\"b\":{},\"c\":[[],{}]}')) == '{\"a\":[],\"b\":{},\"c\":[[],{}]}')\n"
         "assert(json.encode(setmetatable({}, json.object_mt)) == '{}')\n"
         "local t = json.array({}) t[1] = 'x' assert(json.encode(t) == '[\"x\"]')\n"
         "local a = json.decode('[1,2]') a[2] = nil assert(json.encode(a) == '[1]')\n"
         "assert(not pcall(json.array, 1))");
  lua_close(L);
}

static void test_strings(void) {
  lua_State *L = new_state();
  RUN(L, "assert(json.decode([[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]]) == '\"\\\\/\\b\\f\\n\\r\\t')");
  RUN(L, "assert(json.decode([[\"\\ud83d\\ude00\"]]) == '\\u{1F600}')\n"
         "assert(json.decode([[\"\\u00e9\\u20ac\\u0041\"]]) == '\\u{e9}\\u{20ac}A')\n"
         "assert(json.decode([[\"a\\u0000b\"]]) == 'a\\0b')\n"
         "assert(json.decode('\"plain\"') == 'plain')");
  RUN(L, "assert(json.encode('\\u{1F600}') == '\"\\u{1F600}\"')\n"
         "assert(json.encode('\\u{e9}t\\u{e9}') == '\"\\u{e9}t\\u{e9}\"')\n"
         "assert(json.encode('a\\0b') == [[\"a\\u0000b\"]])\n"
         "assert(json.encode('\\1\\31\\127') == '\"\\\\u0001\\\\u001f\\127\"')\n"
         "assert(json.encode('\"\\\\') == [[\"\\\"\\\\\"]])\n"
         "assert(json.encode('\\n\\r\\t\\b\\f') == [[\"\\n\\r\\t\\b\\f\"]])\n"
         "assert(json.encode('/') == '\"/\"')");
  RUN(L, "for _, bad in ipairs({'\\xff', '\\xc3', '\\xc0\\x80', '\\xed\\xa0\\x80', '\\xf4\\x90\\x80\\x80',\n"
         "                        'ok\\xe2\\x82', '\\x80'}) do\n"
         "  local ok, err = pcall(json.encode, bad)\n"
         "  assert(not ok and err:find('UTF%-8'), bad)\n"
         "end");
  /* every string that decodes re-encodes and decodes to itself */
  RUN(L, "local s = 'x\\u{7ff}\\u{800}\\u{ffff}\\u{10000}\\u{10ffff}\"\\\\\\0\\31'\n"
         "assert(json.decode(json.encode(s)) == s)\n"
         "local long = string.rep('abc\\u{e9}', 1000) .. '\\n'\n"
         "assert(json.decode(json.encode(long)) == long)");
  lua_close(L);
}

static void test_errors(void) {
  lua_State *L = new_state();
  RUN(L, "local function bad(s, want)\n"
         "  local ok, err = pcall(json.decode, s)\n"
         "  assert(not ok, s)\n"
         "  assert(err:match('^JSON error at offset %d+: '), err)\n"
         "  if want then assert(err == want, err) end\n"
         "end\n"
         "bad('{') bad('[1,]') bad('01') bad('\"\\\\ud800\"') bad('\\xff') bad('') bad('[1] x')\n"
         "bad('{\"a\":1,}') bad('nul') bad('\"\\1\"') bad('NaN') bad('[\"\\xc0\\x80\"]')\n"
         "bad('[1,x]', 'JSON error at offset 3: unexpected character')\n"
         "bad('[1', 'JSON error at offset 2: unexpected end of input')\n"
         "bad(string.rep('[', 513) .. string.rep(']', 513))\n"
         "assert(not pcall(json.decode))\n"
         "assert(not pcall(json.decode, {}))");
  RUN(L, "local function bad(v, pat)\n"
         "  local ok, err = pcall(json.encode, v)\n"
         "  assert(not ok and err:find(pat), tostring(err))\n"
         "end\n"
         "bad(print, 'function') bad({f = print}, 'function') bad(coroutine.create(print), 'thread')\n"
         "bad(io.stdout, 'userdata')\n"
         "local t = {} t.t = t bad(t, 'contains itself')\n"
         "local a = {} a[1] = {a} bad(a, 'contains itself')\n"
         "local deep = {} local cur = deep\n"
         "for i = 1, 600 do cur[1] = {} cur = cur[1] end\n"
         "bad(deep, 'deeper than 512')\n"
         "assert(not pcall(json.encode))");
  /* the same table twice side by side is not a cycle */
  RUN(L, "local s = {1} assert(json.encode({s, s, {x = s}}) == '[[1],[1],{\"x\":[1]}]')");
  /* 512 levels decode and encode back */
  RUN(L, "local s = string.rep('[', 512) .. string.rep(']', 512)\n"
         "assert(json.encode(json.decode(s)) == s)\n"
         "local o = string.rep('{\"a\":', 511) .. '{}' .. string.rep('}', 511)\n"
         "assert(json.encode(json.decode(o)) == o)\n"
         "local deep = {} local cur = deep\n"
         "for i = 1, 511 do cur[1] = {} cur = cur[1] end\n"
         "assert(pcall(json.encode, deep))\n"
         "cur[1] = {} assert(not pcall(json.encode, deep))");
  lua_close(L);
}

/* The C entry points: spans from a larger buffer, stack balance. */
static void test_c_api(void) {
  lua_State *L = new_state();
  const char *line = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"id\":7,\"v\":[1.5,\"x\"]},\"emitted_at\":1}}";
  lb_jval top, rec, data;
  char err[128];
  int base = lua_gettop(L);
  CHECK_EQ_INT(lb_jskim_validate(line, strlen(line), &top, NULL), 0);
  CHECK(lb_jobj_find(&top, "record", 6, &rec));
  CHECK(lb_jobj_find(&rec, "data", 4, &data));
  lb__json_push(L, &data);
  CHECK_EQ_INT(lua_gettop(L), base + 1);
  CHECK_EQ_INT(lua_type(L, -1), LUA_TTABLE);
  CHECK_EQ_INT(lb__json_encode_push(L, -1, err, sizeof err), 0);
  CHECK_EQ_STR(lua_tostring(L, -1), "{\"id\":7,\"v\":[1.5,\"x\"]}");
  lua_settop(L, base);
  /* a scalar span */
  {
    lb_jval s;
    CHECK_EQ_INT(lb_jskim_validate("  \"a\\u00e9\"  ", 13, &s, NULL), 0);
    lb__json_push(L, &s);
    CHECK_EQ_STR(lua_tostring(L, -1), "a\xc3\xa9");
    lua_settop(L, base);
  }
  /* an error leaves the stack as it was and says why */
  lua_pushcfunction(L, luaopen_airbyte_json);
  CHECK_EQ_INT(lb__json_encode_push(L, -1, err, sizeof err), -1);
  CHECK_EQ_INT(lua_gettop(L), base + 1);
  CHECK(strstr(err, "function") != NULL);
  {
    lb_jbuf *b = lb__jbuf_new(L);
    lua_newtable(L);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "f");
    CHECK_EQ_INT(lb__json_encode(L, -1, b, err, sizeof err), -1);
    CHECK_EQ_INT(lua_gettop(L), base + 3);
    CHECK_EQ_INT(lb__json_encode(L, -3, b, err, 0), -1);   /* errlen 0 is fine */
  }
  lua_settop(L, base);
  /* BigInt from C */
  lb__bigint_push(L, "-123456789012345678901", 22);
  {
    size_t n;
    const char *d = lb__bigint_digits(L, -1, &n);
    CHECK(d && n == 22 && strcmp(d, "-123456789012345678901") == 0);
    CHECK(lb__bigint_digits(L, base, &n) == NULL || base == 0);
  }
  lua_settop(L, base);
  lua_close(L);
}

/* A fixture record decodes and re-encodes to a stable text. */
static void test_fixture(void) {
  lua_State *L = new_state();
  const char *src = getenv("LB_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/../shared/fixtures/source-faker/integration_tests/expected_records.jsonl",
           src ? src : "..");
  {
    FILE *f = fopen(path, "rb");
    if (!f) {
      printf("skip fixture: cannot open %s\n", path);
      lua_close(L);
      return;
    }
    fclose(f);
  }
  lua_pushstring(L, path);
  lua_setglobal(L, "PATH");
  RUN(L, "local n = 0\n"
         "for line in io.lines(PATH) do\n"
         "  local r = json.decode(line)\n"
         "  assert(type(r.stream) == 'string' and math.type(r.emitted_at) == 'integer')\n"
         "  local s = json.encode(r)\n"
         "  assert(json.encode(json.decode(s)) == s)\n"
         "  n = n + 1\n"
         "end\n"
         "assert(n == 124)");
  RUN(L, "local r = json.decode(io.lines(PATH)())\n"
         "assert(r.data.blood_type == 'B\\u{2212}' and r.data.id == 1 and r.data.name == 'Reda')");
  lua_close(L);
}

/* An allocator that fails after a budget: errors raised in the middle of
** encoding must leak nothing (LeakSanitizer checks this in the ASan build)
** and leave the state usable. */
typedef struct budget { long left; } budget;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget *b = (budget *)ud;
  (void)osize;
  if (nsize == 0) { free(ptr); return NULL; }
  if (nsize > osize || !ptr) {
    if (b->left <= 0) return NULL;
    b->left--;
  }
  return realloc(ptr, nsize);
}

static void test_alloc_failure(void) {
  long limit;
  int failures = 0, successes = 0;
  for (limit = 0; limit < 20000; limit = limit * 5 / 4 + 1) {
    budget b;
    lua_State *L;
    b.left = 1000000;
    L = lua_newstate(limited_alloc, &b);
    if (!L) continue;
    luaL_openlibs(L);
    luaL_requiref(L, "airbyte.json", luaopen_airbyte_json, 0);
    lua_setglobal(L, "json");
    if (luaL_dostring(L, "T = {} for i = 1, 200 do T['key' .. i] = {i, 'v' .. i, {x = i / 3}} end\n"
                         "S = json.encode(T)") != LUA_OK) {
      lua_close(L);
      continue;
    }
    b.left = limit;
    if (luaL_dostring(L, "local s = json.encode(T) local t = json.decode(S)") == LUA_OK) successes++;
    else failures++;
    b.left = 1000000;
    lua_settop(L, 0);
    RUN(L, "assert(json.encode({1, {a = 2}}) == '[1,{\"a\":2}]')");
    lua_close(L);
  }
  CHECK(failures > 0);
  CHECK(successes > 0);
}

/* SHA-256 against FIPS 180-4's examples, and digests of canonical JSON. */
static void hex_of(const char *msg, size_t n, char out[65]) {
  lb__sha256 s;
  unsigned char d[32];
  int i;
  lb__sha256_init(&s);
  lb__sha256_update(&s, msg, n);
  lb__sha256_final(&s, d);
  for (i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static int digest_of(const char *json, char out[65]) {
  return lb__json_digest(json, strlen(json), out);
}

static void test_digest(void) {
  char h[65], h2[65];
  static char million[1000000];
  lb__sha256 s;
  unsigned char d[32];
  size_t i;
  hex_of("", 0, h);
  CHECK_EQ_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hex_of("abc", 3, h);
  CHECK_EQ_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
  CHECK_EQ_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  memset(million, 'a', sizeof million);
  lb__sha256_init(&s);
  for (i = 0; i < sizeof million; i += 999) /* uneven pieces cross block edges */
    lb__sha256_update(&s, million + i, sizeof million - i < 999 ? sizeof million - i : 999);
  lb__sha256_final(&s, d);
  for (i = 0; i < 32; i++) sprintf(h + 2 * i, "%02x", d[i]);
  CHECK_EQ_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  /* canonical: member order and spacing do not matter, values do */
  CHECK_EQ_INT(digest_of("{\"b\":1,\"a\":{\"y\":[1,2],\"x\":\"s\"}}", h), 0);
  CHECK_EQ_INT(digest_of(" { \"a\" : {\"x\":\"s\", \"y\":[1, 2]}, \"b\":1 } ", h2), 0);
  CHECK_EQ_STR(h, h2);
  hex_of("{\"a\":{\"x\":\"s\",\"y\":[1,2]},\"b\":1}", 31, h2);
  CHECK_EQ_STR(h, h2);
  CHECK_EQ_INT(digest_of("{\"b\":2,\"a\":{\"y\":[1,2],\"x\":\"s\"}}", h2), 0);
  CHECK(strcmp(h, h2) != 0);
  CHECK_EQ_INT(digest_of("{\"a\":", h2), LB_EINVAL);
}

/* The canonical form every digest hashes (digest.h): the value as
** airbyte.json reads it, spelled as it writes it. Pairs of texts that are
** one value, then pairs that are not. */
static const char *canonical_of(const char *json, lb_sbuf *b) {
  lb__sb_reset(b);
  if (lb__json_canonical(json, strlen(json), b) != 0) return "(error)";
  return b->p ? b->p : "";
}

static void test_canonical(void) {
  static const char *same[][2] = {
    /* member order and white space */
    { "{\"b\":1,\"a\":[true,false,null]}", " {\n \"a\" : [ true , false , null ] , \"b\" : 1 } " },
    /* escapes in keys and strings: the characters they stand for */
    { "{\"a\":\"x/y\"}", "{\"\\u0061\":\"x\\/y\"}" },
    { "\"\xc3\xa9\"", "\"\\u00e9\"" },
    { "\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"" },
    { "\"a\\nb\"", "\"a\\u000Ab\"" },
    { "\"\\u0001\"", "\"\\u0001\"" },
    /* numbers: one value, one spelling; an integral float is that integer */
    { "1", "1.0" }, { "1", "1e0" }, { "1", "10E-1" }, { "1", "1.000" },
    { "100", "1e2" }, { "0", "-0" }, { "0", "-0.0" }, { "0", "0e10" },
    { "0.5", "5e-1" }, { "0.1", "0.10000000000000001" }, { "-2.5", "-25e-1" },
    { "9007199254740993", "9007199254740993" },       /* an int64 stays exact */
    { "1e400", "1e400" },                             /* beyond a double: as spelled */
    /* a key given twice: the last one, as decoding keeps it */
    { "{\"a\":2}", "{\"a\":1,\"a\":2}" },
    { "{\"a\":2,\"b\":0}", "{\"b\":0,\"\\u0061\":1,\"a\":2}" },
    /* empty containers */
    { "{}", " { } " }, { "[]", "[ ]" },
  };
  static const char *differ[][2] = {
    { "1", "1.5" }, { "1", "\"1\"" }, { "[1,2]", "[2,1]" }, { "{}", "[]" },
    { "null", "false" }, { "\"a\"", "\"A\"" },
    { "9007199254740993", "9007199254740992" },       /* no rounding through a double */
    { "12345678901234567890", "12345678901234567891" },  /* beyond int64: digits as spelled */
    { "9223372036854775807", "9.223372036854775807e18" },  /* that float is 2^63 */
    { "{\"a\":{\"b\":1}}", "{\"a\":{\"b\":1,\"c\":null}}" },
  };
  lb_sbuf a = {0}, b = {0};
  char h1[65], h2[65];
  size_t i;
  for (i = 0; i < sizeof same / sizeof same[0]; i++) {
    char *x = strdup(canonical_of(same[i][0], &a));
    CHECK_EQ_STR(x, canonical_of(same[i][1], &b));
    CHECK_EQ_INT(digest_of(same[i][0], h1), 0);
    CHECK_EQ_INT(digest_of(same[i][1], h2), 0);
    CHECK_EQ_STR(h1, h2);
    free(x);
  }
  for (i = 0; i < sizeof differ / sizeof differ[0]; i++) {
    CHECK_EQ_INT(digest_of(differ[i][0], h1), 0);
    CHECK_EQ_INT(digest_of(differ[i][1], h2), 0);
    if (strcmp(h1, h2) == 0) {
      lbt_failed_checks++;
      fprintf(stderr, "  FAIL %s and %s have one digest\n", differ[i][0], differ[i][1]);
    }
  }
  /* the spellings: sorted by key, no white space, the writer's numbers and strings */
  CHECK_EQ_STR(canonical_of(" {\"b\" : [1.50, 2E3, -0.0], \"a\":\"\\u00e9\\/\\t\"} ", &a),
               "{\"a\":\"\xc3\xa9/\\t\",\"b\":[1.5,2000,0]}");
  CHECK_EQ_STR(canonical_of("[1e21, 123456789012345678, 1.25e-7, 12345678901234567890]", &a),
               "[1e+21,123456789012345678,1.25e-07,12345678901234567890]");
  CHECK_EQ_STR(canonical_of("{\"\\u0062\":1,\"a\\\"\":2,\"a\":3}", &a), "{\"a\":3,\"a\\\"\":2,\"b\":1}");
  CHECK_EQ_INT(lb__json_canonical("{\"a\":", 5, &a), LB_EINVAL);
  free(a.p);
  free(b.p);
}

/* json.digest of a text and of the value decoded from it agree, for every
** spelling: a table is digested through the same canonical form. */
static void test_digest_lua_agrees(void) {
  lua_State *L = new_state();
  RUN(L, "local texts = { '{\"b\":1,\"a\":{\"y\":[1,2.0,1e2],\"x\":\"s\\\\u00e9\"}}',\n"
         "  '[1.0, -0, 0.1, 5e-324, 1.7976931348623157e308, 12345678901234567890, -9223372036854775808]',\n"
         "  '{\"\\\\u0061\":1,\"a\":2,\"k\\\\n\":null,\"e\":{},\"l\":[]}', '[\"\\\\ud83d\\\\ude00\"]', 'true' }\n"
         "for _, t in ipairs(texts) do\n"
         "  assert(json.digest(t) == json.digest(json.decode(t)), t)\n"
         "  assert(json.digest(t) == json.digest(json.encode(json.decode(t))), t)\n"
         "end\n"
         "assert(json.digest({ timeout = 30 }) == json.digest({ timeout = 30.0 }))\n"
         "assert(json.digest({ a = 1, b = 2 }) == json.digest('{\"b\":2,\"a\":1}'))\n"
         "assert(json.digest({ 1.5 }) ~= json.digest({ 1 }))");
  lua_close(L);
}

TEST_LIST {
  {"integers", test_integers},
  {"bigint", test_bigint},
  {"floats", test_floats},
  {"structures", test_structures},
  {"empty", test_empty},
  {"strings", test_strings},
  {"errors", test_errors},
  {"c_api", test_c_api},
  {"fixture", test_fixture},
  {"alloc_failure", test_alloc_failure},
  {"digest", test_digest},
  {"canonical", test_canonical},
  {"digest: a text and its decoded value agree", test_digest_lua_agrees},
  {NULL, NULL}
};
LBTEST_MAIN
