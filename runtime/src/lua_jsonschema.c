/*
** lua_jsonschema.c - the airbyte.jsonschema module: JSON Schema draft-07
** over jsonschema.c.
**
**   compile(schema [, opts]) -> Schema | nil, msg, code
**     schema: JSON text, or a Lua value encoded as airbyte.json would.
**     opts:   { format = bool (assert "format"), base_uri = string,
**               max_depth = integer,
**               remotes = { [uri] = JSON text or Lua value } }
**     $refs to other documents are served from opts.remotes only (the
**     draft-07 meta-schema is built in): no network, no Lua callback.
**   Schema:validate(instance [, max_errors]) -> true | false, { "path: message", ... }, truncated
**     instance: JSON text when it is a string, else a Lua value. At most
**     max_errors (default 32) messages; truncated tells whether there were
**     more. max_errors = 0 only gives the verdict (fastest).
**   Schema:validate_value(value [, max_errors]) -> the same, but a string is
**     a JSON string value, not JSON text.
**   Schema:warnings() -> { "where: what", ... } (ignored keywords, patterns
**     that are not enforced)
**   Schema:close()
**
** Misuse raises (rule 4): a bad argument, an instance that is not JSON
** text, a Lua value JSON cannot hold, a closed schema. Failures that depend
** on what the schema or the data turn out to be return nil, msg, code:
** compile errors (invalid schema text, unresolvable $ref) and validations
** that cannot finish (nesting limit, infinite $ref loop). code is the
** error's name: "EJSON", "EREF", "ELOAD", "EDEPTH", "ELOOP", "ENOMEM".
**
** Nothing malloc'd is held across a call that can raise (rule 8): the
** compiled schema belongs to its userdata from before compiling, and the
** error list of a validation lives in a box with __gc.
*/
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "lua_bindings.h"
#include "lb_internal.h"
#include "jsonschema.h"
#include "record.h"

#define SCHEMA_MT "airbyte.jsonschema.Schema"
#define ERRBOX_MT "airbyte.jsonschema.errors"
#define DEFAULT_MAX_ERRORS 32

typedef struct schema_ud {
  lb_schema *s;
} schema_ud;

static const char *err_name(int code) {
#define LB_SCHEMA_XX(name) case LB_SCHEMA_##name: return #name;
  switch (code) { LB_SCHEMA_ERRNO_MAP(LB_SCHEMA_XX) default: break; }
#undef LB_SCHEMA_XX
  return "EUNKNOWN";
}

/* --- remotes: a C array over strings anchored on the Lua stack ----------- */

typedef struct remote {
  const char *uri;
  size_t      urilen;
  const char *text;
  size_t      len;
} remote;

typedef struct remotes {
  remote *r;
  size_t  n;
} remotes;

/* The loader never touches Lua: compile runs with nothing that can raise. */
static int remote_loader(void *ud, const char *uri, char **text, size_t *len) {
  const remotes *rs = ud;
  size_t i, ulen = strlen(uri);
  for (i = 0; i < rs->n; i++) {
    const remote *r = &rs->r[i];
    size_t k = r->urilen;
    if (k > 0 && r->uri[k - 1] == '#') k--;     /* "…/schema#" names the same document */
    if (k != ulen || memcmp(r->uri, uri, k) != 0) continue;
    *text = malloc(r->len ? r->len : 1);
    if (!*text) return -1;
    memcpy(*text, r->text, r->len);
    *len = r->len;
    return 0;
  }
  return -1;
}

/* Collect opts.remotes (table at idx) into a userdata array; the texts
** (encoded where they were Lua values) are kept in a table. Leaves
** stack: ... anchors_table array_userdata */
static void collect_remotes(lua_State *L, int idx, remotes *rs) {
  size_t n = 0, i = 0;
  char err[160];
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  lua_newtable(L);                                   /* stack: anchors */
  rs->r = lua_newuserdatauv(L, (n ? n : 1) * sizeof *rs->r, 0);
  rs->n = 0;                                         /* stack: anchors array */
  lua_pushnil(L);
  while (lua_next(L, idx)) {                         /* stack: anchors array key value */
    remote *r = &rs->r[i];
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "opts.remotes: keys must be URI strings");
    if (lua_type(L, -1) != LUA_TSTRING) {
      if (lb__json_encode_push(L, -1, err, sizeof err))
        luaL_error(L, "opts.remotes[%s]: %s", lua_tostring(L, -2), err);
      lua_replace(L, -2);                            /* stack: anchors array key text */
    }
    r->text = lua_tolstring(L, -1, &r->len);
    r->uri = lua_tolstring(L, -2, &r->urilen);
    /* anchor both strings: anchors[key] = text keeps the two alive */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);                               /* stack: anchors array key key text */
    lua_rawset(L, -5);                               /* stack: anchors array key */
    i++;
    rs->n = i;
  }
}

/* compile(schema [, opts]) */
static int l_compile(lua_State *L) {
  lb_schema_opts o;
  remotes rs = { NULL, 0 };
  schema_ud *u;
  const char *text;
  size_t len;
  char err[512];
  int rc;
  luaL_checkany(L, 1);
  lua_settop(L, 2);
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "format") != LUA_TNIL && lua_toboolean(L, -1))
      o.flags |= LB_SCHEMA_FORMAT_ASSERT;
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "max_depth") != LUA_TNIL) {
      lua_Integer d;
      if (!lua_isinteger(L, -1) || (d = lua_tointeger(L, -1)) < 1 || d > 100000)
        return luaL_argerror(L, 2, "max_depth must be an integer from 1 to 100000");
      o.max_depth = (int)d;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "base_uri") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 2, "base_uri must be a string");
      o.base_uri = lua_tostring(L, -1);   /* stays on the stack below */
    }                                     /* stack: schema opts base_uri */
    if (lua_getfield(L, 2, "remotes") != LUA_TNIL) {
      luaL_argexpected(L, lua_istable(L, -1), 2, "remotes table");
      collect_remotes(L, -1, &rs);        /* stack: schema opts base remotes anchors array */
      o.loader = remote_loader;
      o.loader_ud = &rs;
    }
  }
  if (lua_type(L, 1) == LUA_TSTRING) {
    text = lua_tolstring(L, 1, &len);
  } else {
    if (lb__json_encode_push(L, 1, err, sizeof err))
      return luaL_argerror(L, 1, err);
    text = lua_tolstring(L, -1, &len);    /* stays on the stack */
  }
  /* the userdata first: once compiled, the schema always has an owner */
  u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SCHEMA_MT);
  rc = lb_schema_compile(text, len, &o, &u->s, err, sizeof err);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushstring(L, err_name(rc));
    return 3;
  }
  return 1;
}

/* For the pump (record checks): the compiled schema of the Schema at idx. */
const lb_schema *lb__schema_check(lua_State *L, int idx) {
  schema_ud *u = luaL_checkudata(L, idx, SCHEMA_MT);
  if (!u->s) luaL_error(L, "attempt to use a closed schema");
  return u->s;
}

static schema_ud *check_open(lua_State *L) {
  schema_ud *u = luaL_checkudata(L, 1, SCHEMA_MT);
  if (!u->s) luaL_error(L, "attempt to use a closed schema");
  return u;
}

/* The error list of one validation, freed by __gc if pushing raises. */
static int errbox_gc(lua_State *L) {
  lb_schema_errors *e = luaL_checkudata(L, 1, ERRBOX_MT);
  lb_schema_errors_clear(e);
  return 0;
}

static int do_validate(lua_State *L, int as_value) {
  schema_ud *u = check_open(L);
  lb_schema_errors *e;
  const char *text;
  size_t len;
  char err[160];
  lua_Integer max = luaL_optinteger(L, 3, DEFAULT_MAX_ERRORS);
  int rc, i;
  luaL_checkany(L, 2);
  luaL_argcheck(L, max >= 0 && max <= 100000, 3, "max_errors must be from 0 to 100000");
  lua_settop(L, 3);
  if (!as_value && lua_type(L, 2) == LUA_TSTRING) {
    text = lua_tolstring(L, 2, &len);
  } else {
    if (lb__json_encode_push(L, 2, err, sizeof err))
      return luaL_argerror(L, 2, err);
    text = lua_tolstring(L, -1, &len);    /* stack: schema inst max text */
  }
  e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  e->max = (int)max;
  luaL_setmetatable(L, ERRBOX_MT);
  rc = lb_schema_validate(u->s, text, len, e);
  if (rc == 0) {
    lb_schema_errors_clear(e);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == LB_SCHEMA_EJSON) {
    /* stack: ... box; the message is copied out before raising */
    lua_pushstring(L, e->count ? e->msgs[e->count - 1] : "invalid JSON");
    lb_schema_errors_clear(e);
    return luaL_argerror(L, 2, lua_tostring(L, -1));
  }
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, e->count ? e->msgs[e->count - 1] : lb_schema_strerror(rc));
    lua_pushstring(L, err_name(rc));
    lb_schema_errors_clear(e);
    return 3;
  }
  lua_pushboolean(L, 0);
  lua_createtable(L, e->count, 0);
  for (i = 0; i < e->count; i++) {
    lua_pushstring(L, e->msgs[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushboolean(L, e->truncated);
  lb_schema_errors_clear(e);
  return 3;
}

static int s_validate(lua_State *L) { return do_validate(L, 0); }
static int s_validate_value(lua_State *L) { return do_validate(L, 1); }

static int s_warnings(lua_State *L) {
  schema_ud *u = check_open(L);
  int i, n = lb_schema_nwarnings(u->s);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, lb_schema_warning(u->s, i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* close, __close and __gc: safe to call twice */
static int s_close(lua_State *L) {
  schema_ud *u = luaL_checkudata(L, 1, SCHEMA_MT);
  lb_schema *s = u->s;
  u->s = NULL;
  lb_schema_free(s);
  return 0;
}

static int s_tostring(lua_State *L) {
  schema_ud *u = luaL_checkudata(L, 1, SCHEMA_MT);
  if (u->s) lua_pushfstring(L, SCHEMA_MT " (%p)", (void *)u->s);
  else lua_pushliteral(L, SCHEMA_MT " (closed)");
  return 1;
}

int luaopen_airbyte_jsonschema(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "validate", s_validate }, { "validate_value", s_validate_value },
    { "warnings", s_warnings }, { "close", s_close }, { NULL, NULL }
  };
  static const luaL_Reg meta[] = {
    { "__gc", s_close }, { "__close", s_close }, { "__tostring", s_tostring },
    { "__index", NULL }, { NULL, NULL }
  };
  static const luaL_Reg funcs[] = { { "compile", l_compile }, { NULL, NULL } };
  luaL_newmetatable(L, SCHEMA_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);                  /* stack: mt methods */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, ERRBOX_MT);
  lua_pushcfunction(L, errbox_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
