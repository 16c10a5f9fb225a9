/*
** lua_sandbox.c - airbyte.sandbox: validators that run untrusted Lua code in
** a Lua state of their own, with a memory limit and an instruction limit.
**
**   local sandbox = require "airbyte.sandbox"
**   local v = sandbox.load("rules/users.lua", { memory = "8MB", instructions = 1e6 })
**   local v = sandbox.from_string(code, { ... }, "=users rules")
**   local ok, message, field = v(record)      -- also v:validate(record)
**   v.last_error                              -- nil, or why the last call failed
**   v.memory_used, v.memory_limit, v.instructions
**   v:close()
**
** The chunk is text (bytecode is refused) and must return the validator
** function: function(record) -> ok, message[, field]. `false` means
** invalid; anything else (true, nil) means valid.
**
** What the code can reach: the string, table, math and utf8 libraries
** (string.dump removed), the base functions that only compute (assert,
** error, ipairs, next, pairs, pcall, rawequal, rawget, rawlen, select,
** tonumber, tostring, type, xpcall, getmetatable, setmetatable) and `null`
** (JSON null). Nothing else: no io, os, require, load, dofile, debug,
** collectgarbage, print, and no value of the host's state. The record is
** copied into the sandbox's state (BigInt digits become strings) behind
** read-only proxies, so the validator sees it and cannot change it.
**
** Limits, the Redis way, so that pcall inside the script cannot hold them
** off: a count hook charges executed instructions to the call; past the
** limit, and after an allocation refused for the memory limit, the state
** is marked killed and the hook fires on every instruction, raising each
** time, so every protected call unwinds until the call returns. The call
** then reports false, "sandbox: ..." and the host goes on. The memory limit
** covers the whole state (its globals persist between calls); the
** instruction limit is per call (and for the chunk's own top level).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lb_internal.h"
#include "record.h"

#define SANDBOX_MT "airbyte.Sandbox"
#define HOOK_EVERY 1000            /* instructions between count-hook calls */
#define COPY_MAXDEPTH 200          /* record nesting copied into the sandbox */

typedef enum { KILL_NONE = 0, KILL_INSTRUCTIONS, KILL_MEMORY } kill_reason;

typedef struct sandbox {
  lua_State *S;                    /* the sandbox's own state, NULL once closed */
  size_t used, limit;              /* bytes allocated by S, and the cap (0 = none) */
  int enforce;                     /* the cap holds only while the script runs: our own
                                   ** calls on S (copying the record in, refs) are not
                                   ** protected and must not fail */
  long long budget;                /* instructions per call (0 = no limit) */
  long long spent;                 /* instructions charged to this call */
  kill_reason killed;
  int validator_ref;               /* in S's registry */
  char last_error[256];
} sandbox;

/* --- the state's allocator and hook -------------------------------------- */

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  sandbox *sb = ud;
  if (ptr == NULL) osize = 0;      /* osize then holds a type tag, not a size */
  if (nsize == 0) {
    free(ptr);
    sb->used -= osize;
    return NULL;
  }
  if (sb->enforce && sb->limit && nsize > osize && sb->used + (nsize - osize) > sb->limit) {
    /* Lua turns NULL into a memory error, which a pcall in the script
    ** could catch: the kill makes the count hook unwind the call */
    if (sb->killed == KILL_NONE) sb->killed = KILL_MEMORY;
    return NULL;
  }
  {
    void *np = realloc(ptr, nsize);
    if (np == NULL) return NULL;
    sb->used = sb->used - osize + nsize;
    return np;
  }
}

static sandbox *from_state(lua_State *S) {
  void *ud;
  lua_getallocf(S, &ud);
  return ud;
}

static void count_hook(lua_State *S, lua_Debug *ar) {
  sandbox *sb = from_state(S);
  (void)ar;
  if (sb->killed == KILL_NONE) {
    sb->spent += HOOK_EVERY;
    if (!sb->budget || sb->spent < sb->budget) return;
    sb->killed = KILL_INSTRUCTIONS;
  }
  lua_sethook(S, count_hook, LUA_MASKCOUNT, 1);   /* from now on, every instruction */
  luaL_error(S, "sandbox: %s", sb->killed == KILL_MEMORY ? "memory limit exceeded"
                                                         : "instruction limit exceeded");
}

/* Arms the hook for one call: a fresh instruction budget; a state killed
** for memory is unwound by the every-instruction hook. */
static void arm(sandbox *sb) {
  sb->spent = 0;
  sb->killed = KILL_NONE;
  sb->last_error[0] = '\0';
  lua_sethook(sb->S, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

/* --- the environment ------------------------------------------------------- */

static const char *const base_kept[] = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "select", "tonumber", "tostring", "type", "xpcall", "getmetatable",
  "setmetatable", "_VERSION", "_G", NULL
};

/* xpcall whose message handler is skipped once the call is killed: the
** kill is raised from the count hook, and Lua runs a message handler for
** an error raised there with hooks off, where a loop would never end. */
static int msgh(lua_State *S) {
  sandbox *sb = from_state(S);
  if (sb->killed != KILL_NONE) return 1;
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, 1);
  return 1;
}

static int safe_xpcall(lua_State *S) {
  int n = lua_gettop(S), rc;
  luaL_checktype(S, 2, LUA_TFUNCTION);
  lua_pushvalue(S, 2);
  lua_pushcclosure(S, msgh, 1);
  lua_replace(S, 2);                 /* f, msgh, args... */
  lua_pushvalue(S, 1);
  lua_rotate(S, 3, 1);               /* f, msgh, f, args... */
  rc = lua_pcall(S, n - 2, LUA_MULTRET, 2);
  lua_pushboolean(S, rc == LUA_OK);
  lua_replace(S, 1);                 /* ok, msgh, results... */
  lua_remove(S, 2);
  return lua_gettop(S);
}

/* setmetatable without finalizers: Lua runs __gc with hooks off, so the
** limits would not reach it. */
static int safe_setmetatable(lua_State *S) {
  if (lua_type(S, 2) == LUA_TTABLE && lua_getfield(S, 2, "__gc") != LUA_TNIL)
    return luaL_error(S, "__gc metamethods are not allowed in a sandbox");
  lua_settop(S, 2);
  luaL_checktype(S, 1, LUA_TTABLE);
  if (luaL_getmetafield(S, 1, "__metatable") != LUA_TNIL)
    return luaL_error(S, "cannot change a protected metatable");
  lua_setmetatable(S, 1);
  return 1;
}

static int deny_write(lua_State *S) {
  return luaL_error(S, "the record is read-only");
}

/* A read-only proxy over the table at the top (popped): reads go through,
** writes raise, # and pairs see the real contents. */
static int ro_len(lua_State *S) {
  lua_getmetatable(S, 1);
  lua_getfield(S, -1, "__index");
  lua_pushinteger(S, (lua_Integer)lua_rawlen(S, -1));
  return 1;
}

static int ro_next(lua_State *S) {
  luaL_checktype(S, 1, LUA_TTABLE);
  lua_settop(S, 2);
  return lua_next(S, 1) ? 2 : (lua_pushnil(S), 1);
}

static int ro_pairs(lua_State *S) {
  lua_getmetatable(S, 1);
  lua_pushcfunction(S, ro_next);
  lua_getfield(S, -2, "__index");
  lua_pushnil(S);
  return 3;
}

static void push_readonly(lua_State *S) {
  lua_newtable(S);                 /* proxy */
  lua_createtable(S, 0, 5);        /* its metatable */
  lua_rotate(S, -3, -1);           /* proxy, mt, real */
  lua_setfield(S, -2, "__index");
  lua_pushcfunction(S, deny_write);
  lua_setfield(S, -2, "__newindex");
  lua_pushcfunction(S, ro_len);
  lua_setfield(S, -2, "__len");
  lua_pushcfunction(S, ro_pairs);
  lua_setfield(S, -2, "__pairs");
  lua_pushboolean(S, 0);
  lua_setfield(S, -2, "__metatable");
  lua_setmetatable(S, -2);
}

/* Copies the host value at idx of L onto S's stack. JSON-shaped values
** only: what a record decodes to. */
static int copy_value(lua_State *L, int idx, lua_State *S, int depth, char *err, size_t errlen) {
  size_t n;
  const char *s;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(S, 4)) { snprintf(err, errlen, "record too deep"); return -1; }
  switch (lua_type(L, idx)) {
    case LUA_TNIL: lua_pushnil(S); return 0;
    case LUA_TBOOLEAN: lua_pushboolean(S, lua_toboolean(L, idx)); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) lua_pushinteger(S, lua_tointeger(L, idx));
      else lua_pushnumber(S, lua_tonumber(L, idx));
      return 0;
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &n);
      lua_pushlstring(S, s, n);
      return 0;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { lua_pushlightuserdata(S, NULL); return 0; }
      break;
    case LUA_TUSERDATA:
      if ((s = lb__bigint_digits(L, idx, &n)) != NULL) { lua_pushlstring(S, s, n); return 0; }
      break;
    case LUA_TTABLE:
      if (depth >= COPY_MAXDEPTH) { snprintf(err, errlen, "record nested deeper than %d", COPY_MAXDEPTH); return -1; }
      lua_newtable(S);
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        if (copy_value(L, -2, S, depth + 1, err, errlen) != 0 ||
            copy_value(L, -1, S, depth + 1, err, errlen) != 0) {
          lua_pop(L, 2);
          return -1;
        }
        lua_rawset(S, -3);
        lua_pop(L, 1);
      }
      push_readonly(S);
      return 0;
    default:
      break;
  }
  snprintf(err, errlen, "a %s cannot be given to a sandbox", luaL_typename(L, idx));
  return -1;
}

static int open_env(lua_State *S) {
  static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
    {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}
  };
  const luaL_Reg *lib;
  int i;
  for (lib = libs; lib->func; lib++) {
    luaL_requiref(S, lib->name, lib->func, 1);
    lua_pop(S, 1);
  }
  /* base: keep only what computes */
  lua_pushglobaltable(S);
  lua_newtable(S);                             /* kept */
  for (i = 0; base_kept[i]; i++) {
    lua_getfield(S, -2, base_kept[i]);
    lua_setfield(S, -2, base_kept[i]);
  }
  lua_pushnil(S);
  while (lua_next(S, -3)) {                    /* clear the globals */
    lua_pop(S, 1);
    lua_pushvalue(S, -1);
    lua_pushnil(S);
    lua_rawset(S, -5);
  }
  lua_pushnil(S);
  while (lua_next(S, -2)) {                    /* put the kept ones back */
    lua_pushvalue(S, -2);
    lua_insert(S, -2);
    lua_rawset(S, -5);
  }
  lua_pop(S, 1);
  lua_getfield(S, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (lib = libs + 1; lib->func; lib++) {     /* the libraries, as globals */
    lua_getfield(S, -1, lib->name);
    lua_setfield(S, -3, lib->name);
  }
  lua_pop(S, 1);
  lua_getfield(S, -1, LUA_STRLIBNAME);
  lua_pushnil(S);
  lua_setfield(S, -2, "dump");
  lua_pop(S, 1);
  lua_pushlightuserdata(S, NULL);
  lua_setfield(S, -2, "null");
  lua_pushcfunction(S, safe_xpcall);
  lua_setfield(S, -2, "xpcall");
  lua_pushcfunction(S, safe_setmetatable);
  lua_setfield(S, -2, "setmetatable");
  lua_pop(S, 1);
  /* strings share one metatable: the script may read it, not change it */
  lua_pushliteral(S, "");
  if (lua_getmetatable(S, -1)) {
    lua_pushboolean(S, 0);
    lua_setfield(S, -2, "__metatable");
    lua_pop(S, 1);
  }
  lua_pop(S, 1);
  return 0;
}

/* --- the userdata ---------------------------------------------------------- */

static sandbox *check_sandbox(lua_State *L, int idx) {
  sandbox *sb = luaL_checkudata(L, idx, SANDBOX_MT);
  if (sb->S == NULL) luaL_error(L, "the sandbox is closed");
  return sb;
}

static void close_state(sandbox *sb) {
  if (sb->S) {
    lua_State *S = sb->S;
    lua_sethook(S, NULL, 0, 0);
    sb->enforce = 0;               /* closing must not fail for the limit */
    lua_close(S);
    sb->S = NULL;
  }
}

static int sb_gc(lua_State *L) {
  close_state(luaL_checkudata(L, 1, SANDBOX_MT));
  return 0;
}

static int sb_close(lua_State *L) {
  close_state(luaL_checkudata(L, 1, SANDBOX_MT));
  return 0;
}

static void set_failure(sandbox *sb, const char *what) {
  if (sb->killed == KILL_MEMORY)
    snprintf(sb->last_error, sizeof sb->last_error, "sandbox: memory limit exceeded (%zu bytes)", sb->limit);
  else if (sb->killed == KILL_INSTRUCTIONS)
    snprintf(sb->last_error, sizeof sb->last_error, "sandbox: instruction limit exceeded (%lld)", sb->budget);
  else
    snprintf(sb->last_error, sizeof sb->last_error, "sandbox: %s", what ? what : "error");
}

/* v(record) / v:validate(record) -> ok, message, field */
static int sb_validate(lua_State *L) {
  sandbox *sb = check_sandbox(L, 1);
  lua_State *S = sb->S;
  char err[128];
  int rc, top = lua_gettop(S);
  luaL_checkany(L, 2);
  arm(sb);
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->validator_ref);
  if (copy_value(L, 2, S, 0, err, sizeof err) != 0) {
    lua_settop(S, top);
    return luaL_error(L, "sandbox: %s", err);
  }
  sb->enforce = 1;
  rc = lua_pcall(S, 1, 3, 0);
  sb->enforce = 0;
  lua_sethook(S, NULL, 0, 0);
  if (rc != LUA_OK) {
    set_failure(sb, lua_tostring(S, -1));
    lua_settop(S, top);
    sb->killed = KILL_NONE;
    lua_gc(S, LUA_GCCOLLECT);
    lua_pushboolean(L, 0);
    lua_pushstring(L, sb->last_error);
    return 2;
  }
  lua_pushboolean(L, !(lua_isboolean(S, -3) && !lua_toboolean(S, -3)));
  if (lua_type(S, -2) == LUA_TSTRING || lua_type(S, -2) == LUA_TNUMBER) {
    size_t n;
    const char *s = lua_tolstring(S, -2, &n);
    lua_pushlstring(L, s, n);
  } else {
    lua_pushnil(L);
  }
  if (lua_type(S, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(S, -1, &n);
    lua_pushlstring(L, s, n);
  } else {
    lua_pushnil(L);
  }
  lua_settop(S, top);
  return 3;
}

static int sb_call(lua_State *L) {
  return sb_validate(L);
}

static int sb_index(lua_State *L) {
  sandbox *sb = luaL_checkudata(L, 1, SANDBOX_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "last_error") == 0) {
    if (sb->last_error[0]) lua_pushstring(L, sb->last_error); else lua_pushnil(L);
  } else if (strcmp(k, "memory_used") == 0) {
    lua_pushinteger(L, (lua_Integer)sb->used);
  } else if (strcmp(k, "memory_limit") == 0) {
    lua_pushinteger(L, (lua_Integer)sb->limit);
  } else if (strcmp(k, "instructions") == 0) {
    lua_pushinteger(L, (lua_Integer)sb->budget);
  } else {
    luaL_getmetatable(L, SANDBOX_MT);
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int sb_tostring(lua_State *L) {
  sandbox *sb = luaL_checkudata(L, 1, SANDBOX_MT);
  lua_pushfstring(L, "Sandbox(%s)", sb->S ? "open" : "closed");
  return 1;
}

/* --- creation -------------------------------------------------------------- */

/* "8MB", "512k", 1048576 -> bytes; raises on anything else. */
static size_t parse_size(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number v = lua_tonumber(L, idx);
    if (v < 0 || v > 1e15) luaL_error(L, "sandbox: memory must be between 0 and 1e15 bytes");
    return (size_t)v;
  }
  {
    const char *s = luaL_checkstring(L, idx);
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0) luaL_error(L, "sandbox: memory '%s' is not a size (e.g. \"8MB\")", s);
    while (*end == ' ') end++;
    switch (*end) {
      case 'k': case 'K': v *= 1024; end++; break;
      case 'm': case 'M': v *= 1024 * 1024; end++; break;
      case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
      default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v > 1e15) luaL_error(L, "sandbox: memory '%s' is not a size (e.g. \"8MB\")", s);
    return (size_t)v;
  }
}

/* new sandbox from code[0..len) named chunkname, options at opts_idx. */
static int make(lua_State *L, const char *code, size_t len, const char *chunkname, int opts_idx) {
  sandbox *sb;
  lua_State *S;
  int rc;
  size_t limit = 64 * 1024 * 1024;
  long long budget = 10000000;
  if (!lua_isnoneornil(L, opts_idx)) {
    luaL_checktype(L, opts_idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, opts_idx)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "memory") == 0) limit = parse_size(L, -1);
      else if (strcmp(k, "instructions") == 0) {
        lua_Number v = luaL_checknumber(L, -1);
        if (v < 0 || v > 9e18) return luaL_error(L, "sandbox: instructions must be between 0 and 9e18");
        budget = (long long)v;
      } else {
        return luaL_error(L, "sandbox: unknown option '%s' (valid: memory, instructions)", k);
      }
      lua_pop(L, 1);
    }
  }
  sb = lua_newuserdatauv(L, sizeof *sb, 0);
  memset(sb, 0, sizeof *sb);
  sb->validator_ref = LUA_NOREF;
  luaL_setmetatable(L, SANDBOX_MT);
  S = lua_newstate(limited_alloc, sb);
  if (S == NULL) return luaL_error(L, "sandbox: cannot create a Lua state");
  sb->S = S;
  lua_gc(S, LUA_GCGEN, 0, 0);
  open_env(S);                       /* before the limit: the libraries are ours */
  sb->limit = limit;
  sb->budget = budget;
  if (limit && sb->used >= limit) {
    close_state(sb);
    return luaL_error(L, "sandbox: a memory limit of %d bytes is below what an empty state needs", (int)limit);
  }
  arm(sb);
  rc = luaL_loadbufferx(S, code, len, chunkname, "t");
  if (rc == LUA_OK) {
    sb->enforce = 1;
    rc = lua_pcall(S, 0, 1, 0);
    sb->enforce = 0;
  }
  lua_sethook(S, NULL, 0, 0);
  if (rc != LUA_OK) {
    set_failure(sb, lua_tostring(S, -1));
    lua_pushstring(L, sb->last_error);
    close_state(sb);
    return lua_error(L);
  }
  if (!lua_isfunction(S, -1)) {
    const char *got = lua_typename(S, lua_type(S, -1));   /* a static string */
    close_state(sb);
    return luaL_error(L, "sandbox: %s must return the validator function (got %s)", chunkname, got);
  }
  sb->validator_ref = luaL_ref(S, LUA_REGISTRYINDEX);
  sb->killed = KILL_NONE;
  return 1;
}

/* sandbox.load(path [, opts]) */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  FILE *f = fopen(path, "rb");
  luaL_Buffer b;
  char chunkname[300];
  size_t n;
  if (f == NULL) return luaL_error(L, "sandbox: cannot open %s: %s", path, strerror(errno));
  luaL_buffinit(L, &b);
  do {
    char *p = luaL_prepbuffer(&b);
    n = fread(p, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, n);
  } while (n == LUAL_BUFFERSIZE);
  if (ferror(f)) {
    fclose(f);
    return luaL_error(L, "sandbox: cannot read %s", path);
  }
  fclose(f);
  luaL_pushresult(&b);
  snprintf(chunkname, sizeof chunkname, "@%s", path);
  {
    size_t len;
    const char *code = lua_tolstring(L, -1, &len);
    return make(L, code, len, chunkname, 2);
  }
}

/* sandbox.from_string(code [, opts [, chunkname]]) */
static int l_from_string(lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  const char *chunkname = luaL_optstring(L, 3, "=sandbox");
  return make(L, code, len, chunkname, 2);
}

static const luaL_Reg methods[] = {
  {"validate", sb_validate},
  {"close", sb_close},
  {NULL, NULL}
};

static const luaL_Reg meta[] = {
  {"__call", sb_call},
  {"__index", sb_index},
  {"__gc", sb_gc},
  {"__close", sb_gc},
  {"__tostring", sb_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"load", l_load},
  {"from_string", l_from_string},
  {NULL, NULL}
};

int luaopen_airbyte_sandbox(lua_State *L) {
  luaL_newmetatable(L, SANDBOX_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
