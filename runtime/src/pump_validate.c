/*
** pump_validate.c - the pump's record checks (the validate option): a
** record's data against its stream's JSON schema and Lua rule, and what an
** invalid record becomes (fail, drop, null its fields, quarantine).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pump.h"
#include "record.h"
#include "jsonschema.h"

/* --- record checks (the validate option) ---------------------------------
** Before a record's hook, its data is checked against the stream's JSON
** schema (on the bytes: the C validator, verdict only unless it fails) and
** by the stream's Lua rule (function(record, stream) -> ok, message[,
** field], or an airbyte.sandbox validator). A failing record is counted
** (invalid[stream]["schema" | "rule"]) and then, by policy:
**   fail        raises AirbyteRecordValidationError
**   drop        skipped
**   quarantine  handed to on_quarantine(stream, namespace, data_json,
**               reasons, emitted_at_ms), which stores it; skipped
**   null        each failing top-level field becomes null (the others keep
**               their bytes) and _airbyte_meta.changes says so; a failure
**               that names no field (the record as a whole) drops it
** max_invalid > 0 fails the read once more records than that failed. */

#define MAX_REASONS 16

static const char *const validate_options[] = {
  "schemas", "rules", "on_invalid", "max_invalid", "on_quarantine", NULL };

/* Reads the validate table at idx into pm and the streams; it stays in the
** S_VALIDATE slot so the schemas and rules stay alive. */
void lb__pump_setup_validate(lua_State *L, pump *pm, int idx) {
  static const char *const policies[] = { "fail", "drop", "null", "quarantine", NULL };
  int i;
  luaL_checktype(L, idx, LUA_TTABLE);
  lb__check_options(L, idx, "pump validate", validate_options);
  lua_getfield(L, idx, "on_invalid");
  pm->policy = V_FAIL + luaL_checkoption(L, -1, "fail", policies);
  lua_pop(L, 1);
  lua_getfield(L, idx, "max_invalid");
  pm->max_invalid = lua_isnil(L, -1) ? 0 : (long long)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "schemas");
  lua_getfield(L, idx, "rules");
  for (i = 0; i < pm->nstreams; i++) {
    pump_stream *ps = &pm->s[i];
    lua_pushlstring(L, ps->name, ps->len);
    if (lua_istable(L, -3) && lua_gettable(L, -3) != LUA_TNIL) ps->schema = lb__schema_check(L, -1);
    lua_pop(L, 1);
    lua_pushlstring(L, ps->name, ps->len);
    ps->has_rule = lua_istable(L, -2) && lua_gettable(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  if (pm->policy == V_QUARANTINE) {
    lua_getfield(L, idx, "on_quarantine");
    if (!lua_isfunction(L, -1)) luaL_error(L, "pump: on_invalid = \"quarantine\" needs on_quarantine");
    lua_pop(L, 1);
  }
}

/* The top-level property a validator path ("$.age.x", "$['a b'][0]")
** names, into out; 0 for the record itself ("$"). */
static size_t path_field(const char *path, char *out, size_t cap) {
  size_t n = 0;
  if (path[0] != '$') return 0;
  if (path[1] == '.') {
    const char *p = path + 2;
    while (*p && *p != '.' && *p != '[' && *p != ':' && n < cap) out[n++] = *p++;
  } else if (path[1] == '[' && path[2] == '\'') {
    const char *p = path + 3;
    while (*p && !(p[0] == '\'' && p[1] == ']') && n < cap) {
      if (p[0] == '\\' && p[1]) p++;
      out[n++] = *p++;
    }
  }
  return n;
}

/* reasons[#reasons + 1] = { check =, field =, path =, message = } */
static void add_reason(lua_State *L, int reasons, const char *check, const char *field, size_t flen,
                       const char *path, const char *message) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, check); lua_setfield(L, -2, "check");
  if (flen) { lua_pushlstring(L, field, flen); lua_setfield(L, -2, "field"); }
  if (path) { lua_pushstring(L, path); lua_setfield(L, -2, "path"); }
  lua_pushstring(L, message); lua_setfield(L, -2, "message");
  lua_rawseti(L, reasons, (lua_Integer)lua_rawlen(L, reasons) + 1);
}

/* Schema failures of the record into reasons. */
static void schema_reasons(lua_State *L, const pump_stream *ps, const lb_jval *data, int reasons) {
  lb_schema_errors errs;
  int i;
  memset(&errs, 0, sizeof errs);
  errs.max = MAX_REASONS;
  lb_schema_validate_span(ps->schema, data, &errs);
  for (i = 0; i < errs.count; i++) {
    const char *msg = errs.msgs[i], *colon = strstr(msg, ": ");
    char path[512], field[256];
    size_t plen = colon ? (size_t)(colon - msg) : 0, flen;
    if (plen >= sizeof path) plen = sizeof path - 1;
    memcpy(path, msg, plen);
    path[plen] = '\0';
    flen = path_field(path, field, sizeof field);
    add_reason(L, reasons, "schema", field, flen, plen ? path : NULL, colon ? colon + 2 : msg);
  }
  if (errs.count == 0) add_reason(L, reasons, "schema", NULL, 0, NULL, "does not match the stream's schema");
  lb_schema_errors_clear(&errs);
}

/* Runs the stream's rule; adds a reason when it says no (or fails). */
static void rule_reasons(lua_State *L, const pump_stream *ps, const lb_jval *data, int reasons) {
  size_t flen = 0;
  const char *field = NULL;
  lua_getfield(L, S_VALIDATE, "rules");
  lua_pushlstring(L, ps->name, ps->len);
  lua_gettable(L, -2);
  lua_remove(L, -2);
  lb__json_push(L, data);
  lua_pushlstring(L, ps->name, ps->len);
  if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    lua_pushfstring(L, "the rule failed: %s", msg ? msg : luaL_typename(L, -1));
    add_reason(L, reasons, "rule", NULL, 0, NULL, lua_tostring(L, -1));
    lua_pop(L, 2);
    return;
  }
  if (lua_isboolean(L, -3) && !lua_toboolean(L, -3)) {
    if (lua_type(L, -1) == LUA_TSTRING) field = lua_tolstring(L, -1, &flen);
    add_reason(L, reasons, "rule", field, flen, NULL,
               lua_type(L, -2) == LUA_TSTRING || lua_type(L, -2) == LUA_TNUMBER ? lua_tostring(L, -2)
                                                                            : "rejected by the rule");
  }
  lua_pop(L, 3);
}

/* Raises errors.raise(kind, message, fields) with the fields table and the
** message on top of the stack (in that order), when airbyte.errors is
** loaded (it is, under read and write); else a plain error. */
static void raise_kind(lua_State *L, const char *kind) {
  int msg = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "airbyte.errors") == LUA_TTABLE && lua_getfield(L, -1, "raise") == LUA_TFUNCTION) {
    lua_pushstring(L, kind);
    lua_pushvalue(L, msg);
    lua_pushvalue(L, msg - 1);
    lua_call(L, 3, 0);
  }
  luaL_error(L, "%s (%s)", lua_tostring(L, msg), kind);
}

/* The data with the named top-level fields set to null, pushed as JSON
** text (its span in *out); the other members keep their bytes. */
static void push_nulled(lua_State *L, const lb_jval *data, int reasons, lb_jval *out) {
  luaL_Buffer b;
  lb_jiter it;
  lb_jval key, val;
  int first = 1, n = (int)lua_rawlen(L, reasons), i;
  const char *names[MAX_REASONS * 2];
  size_t lens[MAX_REASONS * 2];
  int k = 0;
  for (i = 1; i <= n && k < MAX_REASONS * 2; i++) {   /* the strings live in reasons */
    lua_rawgeti(L, reasons, i);
    if (lua_getfield(L, -1, "field") == LUA_TSTRING) { names[k] = lua_tolstring(L, -1, &lens[k]); k++; }
    lua_pop(L, 2);
  }
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  lb_jiter_init(&it, data);
  while (lb_jobj_next(&it, &key, &val)) {
    int nulled = 0;
    for (i = 0; i < k && !nulled; i++) nulled = lb_jstr_eq(&key, names[i], lens[i]);
    if (!first) luaL_addchar(&b, ',');
    first = 0;
    luaL_addlstring(&b, key.p, key.n);
    luaL_addchar(&b, ':');
    if (nulled) luaL_addstring(&b, "null"); else luaL_addlstring(&b, val.p, val.n);
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  {
    size_t len, eoff;
    const char *text = lua_tolstring(L, -1, &len);
    lb_jskim_validate(text, len, out, &eoff);
  }
}

/* _airbyte_meta of a nulled record, pushed as JSON text: Airbyte's
** changes format, with the validator's message beside the reason. */
static const char *push_meta(lua_State *L, int reasons) {
  char err[128];
  int n = (int)lua_rawlen(L, reasons), i, k = 0;
  lua_createtable(L, 0, 1);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, reasons, i);
    if (lua_getfield(L, -1, "field") == LUA_TSTRING) {
      lua_createtable(L, 0, 4);
      lua_insert(L, -2);
      lua_setfield(L, -2, "field");
      lua_pushliteral(L, "NULLED"); lua_setfield(L, -2, "change");
      lua_pushliteral(L, "SOURCE_RETRIEVAL_ERROR"); lua_setfield(L, -2, "reason");
      lua_getfield(L, -2, "message"); lua_setfield(L, -2, "message");
      lua_rawseti(L, -3, ++k);                /* stack: meta, changes, reason, change */
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_setfield(L, -2, "changes");
  if (lb__json_encode_push(L, -1, err, sizeof err) != 0) luaL_error(L, "_airbyte_meta: %s", err);
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

/* Does every reason name a field (so that nulling fields fixes it)? */
static int all_fields(lua_State *L, int reasons) {
  int n = (int)lua_rawlen(L, reasons), i, ok = n > 0;
  for (i = 1; i <= n && ok; i++) {
    lua_rawgeti(L, reasons, i);
    ok = lua_getfield(L, -1, "field") == LUA_TSTRING;
    lua_pop(L, 2);
  }
  return ok;
}

/* Returns 1 to keep the record (with *data nulled: its text and meta stay
** on the stack, *pushed = 2, *meta points at the meta text), 0 when it was
** dropped or quarantined. */
int lb__pump_check_record(lua_State *L, pump *pm, pump_stream *ps, const lb_msg *m, lb_jval *data,
                        int *pushed, const char **meta) {
  int reasons, top = lua_gettop(L);
  lb_schema_errors verdict;
  memset(&verdict, 0, sizeof verdict);        /* max 0: only the verdict, the fast path */
  if (ps->schema && lb_schema_validate_span(ps->schema, data, &verdict) == 0) {
    if (!ps->has_rule) return 1;
    lua_newtable(L);
    reasons = lua_gettop(L);
  } else {
    lua_newtable(L);
    reasons = lua_gettop(L);
    if (ps->schema) schema_reasons(L, ps, data, reasons);
  }
  lb_schema_errors_clear(&verdict);
  if (ps->has_rule) rule_reasons(L, ps, data, reasons);
  if (lua_rawlen(L, reasons) == 0) { lua_settop(L, top); return 1; }
  ps->invalid++;
  pm->invalid++;
  lua_rawgeti(L, reasons, 1);
  lua_getfield(L, -1, "check");
  lb__pump_count_invalid(L, &m->stream, lua_tostring(L, -1));
  lua_pop(L, 2);
  if (pm->max_invalid > 0 && pm->invalid > pm->max_invalid) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, ps->name, ps->len); lua_setfield(L, -2, "stream");
    lua_pushinteger(L, pm->max_invalid); lua_setfield(L, -2, "max_invalid");
    lua_pushfstring(L, "more than %I records failed their checks (max_invalid = %I); "
                       "stream '%s' record %I was the last", (lua_Integer)pm->max_invalid,
                    (lua_Integer)pm->max_invalid, ps->name, (lua_Integer)ps->seen);
    raise_kind(L, "AirbyteRecordValidationError");
  }
  if (pm->policy == V_NULL && all_fields(L, reasons)) {
    lb_jval nulled;
    push_nulled(L, data, reasons, &nulled);
    *meta = push_meta(L, reasons);
    lua_remove(L, reasons);                   /* stack: ..., nulled text, meta text */
    *data = nulled;
    *pushed = 2;
    return 1;
  }
  if (pm->policy == V_FAIL) {
    const char *path, *msg;
    lua_rawgeti(L, reasons, 1);
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "message");
    path = lua_tostring(L, -2);
    msg = lua_tostring(L, -1);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, ps->name, ps->len); lua_setfield(L, -2, "stream");
    lua_pushinteger(L, ps->seen); lua_setfield(L, -2, "record_number");
    if (path) { lua_pushstring(L, path); lua_setfield(L, -2, "path"); }
    lua_pushstring(L, msg); lua_setfield(L, -2, "validation_message");
    lua_pushvalue(L, reasons); lua_setfield(L, -2, "reasons");
    lua_pushfstring(L, "stream '%s' record %I is invalid: %s%s%s", ps->name, (lua_Integer)ps->seen,
                    path ? path : "", path ? ": " : "", msg);
    raise_kind(L, "AirbyteRecordValidationError");
  }
  if (pm->policy == V_QUARANTINE) {
    long long ms = 0;
    lb__pump_emitted_ms(&m->emitted_at, &ms);
    lua_getfield(L, S_VALIDATE, "on_quarantine");
    lua_pushlstring(L, ps->name, ps->len);
    if (ps->nslen) lua_pushlstring(L, ps->ns, ps->nslen); else lua_pushnil(L);
    lua_pushlstring(L, data->p, data->n);
    lua_pushvalue(L, reasons);
    lua_pushinteger(L, ms);
    lb__pump_call_lua(L, 5, 0, "storing a quarantined record failed");
  }
  lua_settop(L, top);                         /* drop, quarantine, null without a field */
  return 0;
}
