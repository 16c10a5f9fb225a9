/*
** lua_msg.c - airbyte.Message: one protocol message as Lua sees it.
**
** A message is a userdata holding a copy of its line and the offsets the
** scanner found, so handing one to Lua costs one allocation and no
** decoding. Fields resolve on access:
**   msg.type, msg.line                        always
**   msg.stream, msg.namespace, msg.emitted_at  RECORD, from the skimmed spans
**   msg.data                                   RECORD data (decoded once)
**   msg.data_json                              RECORD data as the source wrote it
**   msg.record, msg.state, msg.trace, ...      the decoded payload
**   msg:decode()                               the whole message as a table
**   msg:payload_span()                         first, last byte (1-based) of the
**                                              payload object ("state", ...) in
**                                              msg.line, for edits that keep
**                                              the rest of the line as it is
** Decoded values are cached in the message's user value.
*/
#include <string.h>
#include "lua_bindings.h"
#include "proc.h"
#include "protocol.h"
#include "record.h"

#define MSG_MT "airbyte.Message"

typedef struct span {
  uint32_t off, n;
  uint8_t type;
} span;

typedef struct msg_ud {
  lb_msg_type type;
  uint32_t len;
  span payload, stream, ns, emitted_at, data;
  char line[1];
} msg_ud;

static const char mt_key = 0;   /* registry: the metatable */

static void to_span(span *s, const char *line, const lb_jval *v) {
  s->type = (uint8_t)v->type;
  s->off = v->type ? (uint32_t)(v->p - line) : 0;
  s->n = v->type ? (uint32_t)v->n : 0;
}

static lb_jval from_span(const msg_ud *u, const span *s) {
  lb_jval v;
  v.type = (lb_jtype)s->type;
  v.p = u->line + s->off;
  v.n = s->n;
  return v;
}

void lb__push_message(lua_State *L, const lb_msg *m, const char *line, size_t len) {
  msg_ud *u = lua_newuserdatauv(L, offsetof(msg_ud, line) + len + 1, 1);
  u->type = m->type;
  u->len = (uint32_t)len;
  memcpy(u->line, line, len);
  u->line[len] = '\0';
  to_span(&u->payload, line, &m->payload);
  if (m->type == LB_MSG_RECORD) {
    to_span(&u->stream, line, &m->stream);
    to_span(&u->ns, line, &m->ns);
    to_span(&u->emitted_at, line, &m->emitted_at);
    to_span(&u->data, line, &m->data);
  } else {
    memset(&u->stream, 0, sizeof(span) * 4);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &mt_key);
  lua_setmetatable(L, -2);
}

/* The cache table (user value), created on first use. */
static void push_cache(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
  }
}

/* Decodes the whole line into the cache table (once); leaves it on top. */
static void decode_all(lua_State *L, msg_ud *u) {
  lb_jval top;
  size_t err;
  push_cache(L, 1);
  lua_pushliteral(L, "\1whole");
  if (lua_rawget(L, -2) != LUA_TNIL) { lua_pop(L, 1); return; }
  lua_pop(L, 1);
  if (lb_jskim_validate(u->line, u->len, &top, &err) == 0) {
    lb__json_push(L, &top);            /* stack: cache, decoded */
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -5);
    }
    lua_pushliteral(L, "\1whole");
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
}

static int msg_decode(lua_State *L) {
  msg_ud *u = luaL_checkudata(L, 1, MSG_MT);
  lb_jval top;
  size_t err;
  lua_settop(L, 1);
  if (lb_jskim_validate(u->line, u->len, &top, &err) != 0) return luaL_error(L, "invalid message");
  lb__json_push(L, &top);
  return 1;
}

static int msg_payload_span(lua_State *L) {
  msg_ud *u = luaL_checkudata(L, 1, MSG_MT);
  lua_pushinteger(L, (lua_Integer)u->payload.off + 1);
  lua_pushinteger(L, (lua_Integer)u->payload.off + (lua_Integer)u->payload.n);
  return 2;
}

static int msg_index(lua_State *L) {
  msg_ud *u = lua_touserdata(L, 1);
  size_t klen;
  const char *k = lua_tolstring(L, 2, &klen);
  lb_jval v;
  if (k == NULL) return 0;
  switch (klen) {
    case 4:
      if (memcmp(k, "type", 4) == 0) {
        lua_rawgeti(L, lua_upvalueindex(1), (lua_Integer)u->type);
        return 1;
      }
      if (memcmp(k, "line", 4) == 0) {
        lua_pushlstring(L, u->line, u->len);
        return 1;
      }
      if (memcmp(k, "data", 4) == 0 && u->type == LB_MSG_RECORD) {
        push_cache(L, 1);
        if (lua_getfield(L, -1, "\1data") != LUA_TNIL) return 1;
        lua_pop(L, 1);
        v = from_span(u, &u->data);
        lb__json_push(L, &v);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "\1data");
        return 1;
      }
      break;
    case 6:
      if (memcmp(k, "stream", 6) == 0 && u->type == LB_MSG_RECORD) {
        v = from_span(u, &u->stream);
        lb__push_jstring(L, &v);
        return 1;
      }
      if (memcmp(k, "decode", 6) == 0) {
        lua_pushcfunction(L, msg_decode);
        return 1;
      }
      break;
    case 9:
      if (memcmp(k, "data_json", 9) == 0 && u->type == LB_MSG_RECORD) {
        lua_pushlstring(L, u->line + u->data.off, u->data.n);   /* as the source wrote it */
        return 1;
      }
      if (memcmp(k, "namespace", 9) == 0 && u->type == LB_MSG_RECORD) {
        v = from_span(u, &u->ns);
        if (v.type == LB_JSTRING) lb__push_jstring(L, &v);
        else lua_pushnil(L);
        return 1;
      }
      break;
    case 10:
      if (memcmp(k, "emitted_at", 10) == 0 && u->type == LB_MSG_RECORD) {
        long long ms;
        v = from_span(u, &u->emitted_at);
        if (v.type != LB_JNUMBER) lua_pushnil(L);
        else if (lb_jnum_to_int64(&v, &ms)) lua_pushinteger(L, (lua_Integer)ms);
        else lua_pushnumber(L, lb_jnum_to_double(&v));
        return 1;
      }
      break;
    case 12:
      if (memcmp(k, "payload_span", 12) == 0) {
        lua_pushcfunction(L, msg_payload_span);
        return 1;
      }
      break;
    default:
      break;
  }
  decode_all(L, u);                    /* stack: msg, key, cache */
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int msg_tostring(lua_State *L) {
  msg_ud *u = luaL_checkudata(L, 1, MSG_MT);
  lua_pushfstring(L, "airbyte.Message(%s)", lb_msg_type_name(u->type));
  return 1;
}

/* Creates the metatable; called by luaopen_airbyte_process. */
void lb__msg_open(lua_State *L) {
  int t;
  luaL_newmetatable(L, MSG_MT);
  lua_createtable(L, LB_MSG__COUNT, 0);        /* type names, interned once */
  for (t = 0; t < LB_MSG__COUNT; t++) {
    lua_pushstring(L, t == LB_MSG_NONE ? "LOG_LINE" : lb_msg_type_name((lb_msg_type)t));
    lua_rawseti(L, -2, t);
  }
  lua_pushcclosure(L, msg_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, msg_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &mt_key);
}
