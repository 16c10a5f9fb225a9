/*
** lua_sys.c - the process's surroundings in `airbyte.core`: clocks, ids
** (ids.c), stdin, the terminal and the executable's path.
**
**   core.now(), core.time_ms()               -- monotonic ms, wall-clock ms
**   core.uuid4(), core.ulid(), core.short_id()
**   core.read_stdin([max]), core.count_prefixed_lines(s, init, prefix)
**   core.isatty(fd), core.exe_path()
*/
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "lb_internal.h"
#include "ids.h"

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

/* Wall-clock milliseconds since the epoch, as an integer (emitted_at). */
static int l_time_ms(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return luaL_error(L, "gettimeofday failed");
  lua_pushinteger(L, (lua_Integer)tv.tv_sec * 1000 + tv.tv_usec / 1000);
  return 1;
}

static int l_exe_path(lua_State *L) {
  const char *exe = lb__exe_path(lb__rt(L));
  if (exe) lua_pushstring(L, exe);
  else lua_pushnil(L);
  return 1;
}

/* read_stdin([max]) -> string | nil at end of input; raises on a read error.
** One read(2) of fd 0, returning as soon as some bytes are there: io.read(n)
** waits for all n bytes, which would hold back a destination's STATE echo
** while its source is quiet. It blocks the thread, so it is meant for
** connectors run as their own process (luabyte connector NAME write). */
static int l_read_stdin(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 1, 65536);
  luaL_Buffer b;
  char *p;
  ssize_t n;
  luaL_argcheck(L, max > 0 && max <= (1 << 24), 1, "out of range");
  p = luaL_buffinitsize(L, &b, (size_t)max);
  do n = read(0, p, (size_t)max); while (n < 0 && errno == EINTR);
  if (n < 0) return luaL_error(L, "cannot read stdin: %s", strerror(errno));
  if (n == 0) {
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* uuid4() -> a random (version 4) UUID string, from the generator in
** this closure's upvalue (seeded from the OS once per runtime): record ids
** for destinations, where a Lua string.format per record shows. */
static int l_uuid4(lua_State *L) {
  lb_rng *r = lua_touserdata(L, lua_upvalueindex(1));
  char out[37];
  if (r->s[0] == 0 && r->s[1] == 0) lb__rng_seed(r, r);
  lb__uuid4(r, out);
  lua_pushlstring(L, out, 36);
  return 1;
}

/* ulid() -> a new ULID (26 characters, time-ordered). */
static int l_ulid(lua_State *L) {
  char out[26];
  lb__ulid(out);
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* short_id() -> 9 time-ordered characters (log file names). */
static int l_short_id(lua_State *L) {
  char out[9];
  lb__short_id(out);
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* count_prefixed_lines(s, init, prefix) -> n, pos: how many complete lines
** of s, from position init on, start with prefix (stopping at the first
** that does not), and the position after them. Lets a destination count a
** run of records of one stream per call instead of one Lua step per line. */
static int l_count_prefixed_lines(lua_State *L) {
  size_t len, plen;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  const char *prefix = luaL_checklstring(L, 3, &plen);
  size_t pos = init > 0 ? (size_t)init - 1 : 0;
  lua_Integer n = 0;
  while (pos < len && len - pos >= plen && memcmp(s + pos, prefix, plen) == 0) {
    const char *nl = memchr(s + pos + plen, '\n', len - pos - plen);
    if (nl == NULL) break;            /* an incomplete last line: not counted */
    pos = (size_t)(nl - s) + 1;
    n++;
  }
  lua_pushinteger(L, n);
  lua_pushinteger(L, (lua_Integer)pos + 1);
  return 2;
}

/* isatty(fd) -> boolean: decides between a live progress line and plain lines. */
static int l_isatty(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  /* with a host log sink, stderr is not where messages go */
  lua_pushboolean(L, !(fd == 2 && lb__rt(L)->log) && isatty(fd));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"now", l_now},
  {"time_ms", l_time_ms},
  {"exe_path", l_exe_path},
  {"ulid", l_ulid},
  {"short_id", l_short_id},
  {"isatty", l_isatty},
  {"count_prefixed_lines", l_count_prefixed_lines},
  {"read_stdin", l_read_stdin},
  {NULL, NULL}
};

void lb__open_sys(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
  memset(lua_newuserdatauv(L, sizeof(lb_rng), 0), 0, sizeof(lb_rng));
  lua_pushcclosure(L, l_uuid4, 1);
  lua_setfield(L, -2, "uuid4");
}
