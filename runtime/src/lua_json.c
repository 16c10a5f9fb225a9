/*
** lua_json.c - the airbyte.json module: strict decode, deterministic
** encode, null, BigInt, and the shared array/object metatables.
**
** decode and encode raise on bad input (misuse, rule 4): the data is the
** caller's, there is no environment to fail.
*/
#include <lua.h>
#include <lauxlib.h>
#include <string.h>

#include "lb_internal.h"
#include "jskim.h"
#include "jsonenc.h"
#include "record.h"
#include "digest.h"

/* json.decode(str) -> value; raises "JSON error at offset N: reason". */
static int j_decode(lua_State *L) {
  size_t n, off = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  lb_jval top;
  int rc = lb_jskim_validate(s, n, &top, &off);
  if (rc)
    return luaL_error(L, "JSON error at offset %I: %s", (lua_Integer)off,
                      lb_jskim_strerror(rc));
  lb__json_push(L, &top);
  return 1;
}

/* json.encode(value) -> string; raises on what JSON cannot hold. */
static int j_encode(lua_State *L) {
  char err[160];
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (lb__json_encode_push(L, 1, err, sizeof err))
    return luaL_error(L, "%s", err);
  return 1;
}

/* json.escape(s) -> s with JSON string escapes applied, no quotes (s itself
** when it needs none). Bytes >= 0x80 pass unchecked, as they came. */
static int j_escape(lua_State *L) {
  size_t n, need;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *p;
  long w;
  if (lb__json_plain_span(s, n) == n) {
    lua_settop(L, 1);
    return 1;
  }
  need = lb__json_quoted_len(s, n);
  p = luaL_buffinitsize(L, &b, need);
  w = lb__json_quote(s, n, p, 0);
  memmove(p, p + 1, (size_t)w - 2);          /* drop the quotes */
  luaL_pushresultsize(&b, (size_t)w - 2);
  return 1;
}

/* json.number(x) -> JSON text of a number (or BigInt), nil for NaN and the
** infinities: the text json.encode writes for it. */
static int j_number(lua_State *L) {
  char out[LB_JSON_NUM_ROOM];
  size_t n;
  const char *d = lb__bigint_digits(L, 1, &n);
  if (d) {
    lua_pushlstring(L, d, n);
    return 1;
  }
  if (lua_isinteger(L, 1)) {
    n = lb__json_fmt_int((long long)lua_tointeger(L, 1), out);
  } else {
    n = lb__json_fmt_double((double)luaL_checknumber(L, 1), out);
    if (n == 0) { lua_pushnil(L); return 1; }
  }
  lua_pushlstring(L, out, n);
  return 1;
}

/* json.bigint(digits) -> BigInt. Integers are accepted too. */
static int j_bigint(lua_State *L) {
  size_t n;
  const char *s;
  if (lb__bigint_digits(L, 1, NULL)) {
    lua_settop(L, 1);
    return 1;
  }
  if (lua_isinteger(L, 1)) {
    lua_pushfstring(L, "%I", (lua_Integer)lua_tointeger(L, 1));
    lua_replace(L, 1);
  } else {
    luaL_checktype(L, 1, LUA_TSTRING);
  }
  s = lua_tolstring(L, 1, &n);
  if (lb__bigint_from_string(L, s, n))
    return luaL_argerror(L, 1, "expected a decimal integer string");
  return 1;
}

static int j_is_bigint(lua_State *L) {
  lua_pushboolean(L, lb__bigint_digits(L, 1, NULL) != NULL);
  return 1;
}

/* json.digest(value) -> lower-case hex SHA-256 of the value's canonical
** JSON (digest.h: members ordered by key, no white space, strings by their
** characters, numbers by value): equal values, equal digests, whatever the
** order a table was filled in. A string argument is taken as JSON text,
** and has the digest of the value json.decode makes of it. */
static int j_digest(lua_State *L) {
  char err[160], hex[65];
  size_t n;
  const char *s;
  int rc;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (lua_type(L, 1) != LUA_TSTRING && lb__json_encode_push(L, 1, err, sizeof err))
    return luaL_error(L, "%s", err);
  s = lua_tolstring(L, -1, &n);
  if ((rc = lb__json_digest(s, n, hex)) != 0)
    return luaL_error(L, rc == LB_ENOMEM ? "out of memory" : "json.digest: not a JSON text");
  lua_pushstring(L, hex);
  return 1;
}

/* json.array(t) -> t, marked so that it encodes as an array even empty. */
static int j_array(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lb__json_push_array_mt(L);
  lua_setmetatable(L, 1);
  return 1;
}

int luaopen_airbyte_json(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "decode", j_decode }, { "encode", j_encode }, { "bigint", j_bigint },
    { "is_bigint", j_is_bigint }, { "array", j_array }, { "escape", j_escape },
    { "number", j_number }, { "digest", j_digest }, { NULL, NULL }
  };
  luaL_newlib(L, funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lb__json_push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
  lb__json_push_object_mt(L);
  lua_setfield(L, -2, "object_mt");
  return 1;
}
