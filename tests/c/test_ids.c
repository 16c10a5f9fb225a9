/* The runtime's one id generator (ids.c) and mkdir -p (fs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lbtest.h"
#include "ids.h"
#include "fs.h"

static int all_in(const char *s, size_t n, const char *set) {
  size_t i;
  for (i = 0; i < n; i++) if (!strchr(set, s[i])) return 0;
  return 1;
}

static void uuid4_has_version_and_variant(void) {
  lb_rng r = {{0, 0}};
  char a[37], b[37];
  lb__rng_seed(&r, &r);
  lb__uuid4(&r, a);
  lb__uuid4(&r, b);
  CHECK_EQ_INT(strlen(a), 36);
  CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
  CHECK(a[14] == '4');
  CHECK(strchr("89ab", a[19]) != NULL);
  CHECK(strcmp(a, b) != 0);
}

static void uuid7_increases_within_a_millisecond_and_when_the_clock_steps_back(void) {
  lb_rng r = {{0, 0}};
  lb_uuid7 st = {0, 0, 0};
  char prev[37], id[37];
  int i;
  lb__rng_seed(&r, &r);
  lb__uuid7(&r, &st, 1700000000000ull, prev);
  CHECK(prev[14] == '7');
  CHECK(strncmp(prev, "018bcfe5-6800", 13) == 0);     /* the millisecond, big-endian */
  for (i = 0; i < 1000; i++) {
    lb__uuid7(&r, &st, i < 500 ? 1700000000000ull : 1699999999000ull, id);
    CHECK(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof id);
  }
  lb__uuid7(&r, &st, 1700000000001ull, id);
  CHECK(strcmp(prev, id) < 0);
}

static void ulid_and_short_id_use_crockford_base32(void) {
  static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  char u[26], v[26], s[9];
  lb__ulid(u);
  lb__ulid(v);
  CHECK(all_in(u, 26, b32));
  CHECK(u[0] <= '7');                                  /* 48 bits of ms in 50 */
  CHECK(memcmp(u, v, 26) != 0);
  lb__short_id(s);
  CHECK(all_in(s, 9, b32));
}

static void mkdir_p_makes_parents_and_refuses_a_file(void) {
  char tmpl[] = "/tmp/lb_ids_XXXXXX", path[256], file[256];
  struct stat st;
  FILE *f;
  CHECK(mkdtemp(tmpl) != NULL);
  snprintf(path, sizeof path, "%s/a/b/c", tmpl);
  CHECK_EQ_INT(lb__mkdir_p(path, 0755), 0);
  CHECK(strcmp(path + strlen(tmpl), "/a/b/c") == 0);   /* left as it was */
  CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
  CHECK_EQ_INT(lb__mkdir_p(path, 0755), 0);            /* again: nothing to do */
  snprintf(file, sizeof file, "%s/f", tmpl);
  f = fopen(file, "w");
  CHECK(f != NULL);
  if (f) fclose(f);
  snprintf(path, sizeof path, "%s/f/g", tmpl);
  CHECK(lb__mkdir_p(path, 0755) != 0);
  CHECK_EQ_STR(path, file);                            /* cut at the component that failed */
  remove(file);
  snprintf(path, sizeof path, "%s/a/b/c", tmpl); rmdir(path);
  snprintf(path, sizeof path, "%s/a/b", tmpl); rmdir(path);
  snprintf(path, sizeof path, "%s/a", tmpl); rmdir(path);
  rmdir(tmpl);
}

TEST_LIST {
  {"uuid4_has_version_and_variant", uuid4_has_version_and_variant},
  {"uuid7_increases_within_a_millisecond_and_when_the_clock_steps_back",
   uuid7_increases_within_a_millisecond_and_when_the_clock_steps_back},
  {"ulid_and_short_id_use_crockford_base32", ulid_and_short_id_use_crockford_base32},
  {"mkdir_p_makes_parents_and_refuses_a_file", mkdir_p_makes_parents_and_refuses_a_file},
  {NULL, NULL}
};
LBTEST_MAIN
