/*
** pump_rename.c - stream names renamed on the way (an Airbyte connection's
** stream prefix): the prefix as JSON text for the pump's forwarding, and
** pump.prefix_streams / pump.unprefix_streams for one message.
*/
#include <stdlib.h>
#include <string.h>
#include "pump.h"
#include "record.h"

/* The prefix at idx as it goes between a JSON string's quotes; the text
** stays on the stack (one slot) until the caller pops it. */
const char *lb__pump_escaped_prefix(lua_State *L, int idx, size_t *len) {
  char err[128];
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) luaL_error(L, "stream_prefix must be a string");
  if (lb__json_encode_push(L, idx, err, sizeof err) != 0)
    luaL_error(L, "stream_prefix cannot be a stream name: %s", err);
  s = lua_tolstring(L, -1, len);
  *len -= 2;
  return s + 1;
}

/* prefix_streams(line, prefix) -> the message with every stream name it
** carries prefixed; unprefix_streams(line, prefix) -> the names that begin
** with the prefix without it (the others as they are). A line that is not
** a protocol message comes back unchanged. */
static int rename_streams(lua_State *L, int strip) {
  size_t len, plen, elen;
  const char *line = luaL_checklstring(L, 1, &len);
  const char *prefix = luaL_checklstring(L, 2, &plen);
  const char *esc = lb__pump_escaped_prefix(L, 2, &elen), *p = line;
  lb_jval names[MAX_SPLICES];
  lb_msg m;
  int n, i, pieces = 0;
  lb_msg_parse(line, len, &m);
  n = lb_msg_stream_names(&m, names, MAX_SPLICES);
  if (n > MAX_SPLICES) n = MAX_SPLICES;
  luaL_checkstack(L, 2 * n + 4, "renaming streams");
  for (i = 0; i < n; i++) {
    const lb_jval *nm = &names[i];
    if (!strip) {
      lua_pushlstring(L, p, (size_t)(nm->p + 1 - p));
      lua_pushlstring(L, esc, elen);
      pieces += 2;
      p = nm->p + 1;
    } else if (nm->n - 2 >= elen && memcmp(nm->p + 1, esc, elen) == 0) {
      lua_pushlstring(L, p, (size_t)(nm->p + 1 - p));       /* spelled as we escape it */
      pieces++;
      p = nm->p + 1 + elen;
    } else if (lb_jstr_has_escapes(nm)) {                     /* spelled otherwise: decode */
      char *buf = malloc(nm->n), err[64];
      size_t dn;
      if (buf == NULL) return luaL_error(L, "out of memory");
      dn = lb_jstr_decode(nm, buf, nm->n);
      if (dn >= plen && memcmp(buf, prefix, plen) == 0) {
        lua_pushlstring(L, p, (size_t)(nm->p - p));
        lua_pushlstring(L, buf + plen, dn - plen);
        free(buf);
        if (lb__json_encode_push(L, -1, err, sizeof err) != 0) return luaL_error(L, "%s", err);
        lua_remove(L, -2);
        pieces += 2;
        p = nm->p + nm->n;
      } else {
        free(buf);
      }
    }
  }
  lua_pushlstring(L, p, (size_t)(line + len - p));
  lua_concat(L, pieces + 1);
  return 1;
}

int lb__pump_prefix_streams(lua_State *L) {
  return rename_streams(L, 0);
}

int lb__pump_unprefix_streams(lua_State *L) {
  return rename_streams(L, 1);
}
