/*
** record.h - JSON spans to Lua values and Lua values to JSON text.
**
** Decoding: objects become tables, arrays become sequences carrying the
** shared array metatable (so [] re-encodes as []), empty objects carry the
** shared object metatable, null is lightuserdata NULL (like cjson.null),
** integers that fit int64 are Lua integers and bigger ones are BigInt
** userdata ("airbyte.BigInt") that keep every digit.
**
** The metatables live in the registry under keys that are addresses of
** statics in record.c, created on first use: no C globals.
*/
#ifndef LB_RECORD_H
#define LB_RECORD_H

#include <stddef.h>
#include <lua.h>
#include "jskim.h"

/* Deepest table nesting the encoder accepts (deeper is taken for a cycle). */
#define LB_JSON_MAXDEPTH 512

/* Push the Lua value of a span that lb_jskim_validate (or lb_jskim_value)
** accepted. Must not be given unvalidated bytes. Raises only on memory
** errors. */
void lb__json_push(lua_State *L, const lb_jval *v);

/* Push the text of a validated JSON string span (escapes decoded): the one
** way a scanned string becomes a Lua string. */
void lb__push_jstring(lua_State *L, const lb_jval *s);

/* Push the shared array / object metatable. */
void lb__json_push_array_mt(lua_State *L);
void lb__json_push_object_mt(lua_State *L);

/* Push a BigInt holding s[0..n), which must be canonical decimal digits:
** -?(0|[1-9][0-9]*) and not "-0". */
void lb__bigint_push(lua_State *L, const char *s, size_t n);

/* Parse a decimal integer string (optional '-', digits, leading zeros
** allowed) into a canonical BigInt and push it. Returns 0, or -1 when s is
** not such a string (nothing pushed). */
int lb__bigint_from_string(lua_State *L, const char *s, size_t n);

/* Digits of the BigInt at idx (NUL-terminated, valid while the value is
** alive), or NULL when the value is not a BigInt. */
const char *lb__bigint_digits(lua_State *L, int idx, size_t *len);

/* A growable output buffer owned by a userdata box, so that an error raised
** in the middle of encoding (out of memory) leaks nothing. A luaL_Buffer
** does not fit here: the encoder pushes tables and keys while it appends,
** and a luaL_Buffer needs the stack balanced around each of its calls. */
typedef struct lb_jbuf {
  char  *p;
  size_t n;     /* bytes used */
  size_t cap;
} lb_jbuf;

/* Push a new empty buffer box and return its buffer. The memory comes from
** the state's allocator and is freed by the box's __gc / __close, or
** earlier by lb__jbuf_free. */
lb_jbuf *lb__jbuf_new(lua_State *L);
void lb__jbuf_free(lua_State *L, lb_jbuf *b);

/* Append the JSON text of the value at idx to b. Returns 0, or -1 with a
** message in err[0..errlen) for a value JSON cannot hold (function, NaN,
** invalid UTF-8, cycle, nesting deeper than LB_JSON_MAXDEPTH, bad key).
** Leaves the stack as it found it. Raises only on memory errors.
** Tables: an array when they carry the array metatable or are a non-empty
** sequence 1..n with no other key; otherwise an object with its keys
** (strings, or integers written as strings) sorted bytewise. */
int lb__json_encode(lua_State *L, int idx, lb_jbuf *b, char *err, size_t errlen);

/* Encode the value at idx and push the JSON text as a string: 0; or -1
** with err set and nothing pushed. */
int lb__json_encode_push(lua_State *L, int idx, char *err, size_t errlen);

#endif
