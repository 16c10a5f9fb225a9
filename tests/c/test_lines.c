/* test_lines.c - the NDJSON framer: split reads, CRLF, empty and oversized lines. */
#include <stdlib.h>
#include "lbtest.h"
#include "lines.h"

/* Feeds text to the framer in pieces of `piece` bytes and collects lines. */
static int feed(lb_lines *b, const char *text, size_t piece, char out[][64], int max, int *toolong) {
  size_t off = 0, len = strlen(text);
  int n = 0;
  *toolong = 0;
  while (off < len || !b->eof) {
    const char *line;
    size_t ll;
    int rc;
    if (off < len) {
      size_t room, k = len - off < piece ? len - off : piece;
      char *dst = lb_lines_reserve(b, &room);
      if (k > room) k = room;
      memcpy(dst, text + off, k);
      lb_lines_commit(b, k);
      off += k;
    } else {
      b->eof = 1;
    }
    while ((rc = lb_lines_next(b, &line, &ll)) != LB_LINES_AGAIN) {
      if (rc == LB_LINES_TOOLONG) { (*toolong)++; continue; }
      if (n < max) { memcpy(out[n], line, ll < 63 ? ll : 63); out[n][ll < 63 ? ll : 63] = 0; }
      n++;
    }
  }
  return n;
}

static void split_reads(void) {
  size_t piece;
  for (piece = 1; piece <= 17; piece++) {
    lb_lines b;
    char out[8][64];
    int tl, n;
    lb_lines_init(&b, 1024, 0);
    n = feed(&b, "{\"a\":1}\n{\"b\":2}\nlast", piece, out, 8, &tl);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(out[0], "{\"a\":1}");
    CHECK_EQ_STR(out[1], "{\"b\":2}");
    CHECK_EQ_STR(out[2], "last");
    CHECK_EQ_INT(tl, 0);
    lb_lines_free(&b);
  }
}

static void crlf_and_empty(void) {
  lb_lines b;
  char out[8][64];
  int tl, n;
  lb_lines_init(&b, 1024, 0);
  n = feed(&b, "one\r\n\r\n\ntwo\r\n\n", 3, out, 8, &tl);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(out[0], "one");
  CHECK_EQ_STR(out[1], "two");
  lb_lines_free(&b);
}

static void oversized_is_error_and_skipped(void) {
  lb_lines b;
  char out[8][64], *text;
  int tl, n, i;
  size_t k = 0;
  text = malloc(300000);
  k += (size_t)sprintf(text + k, "short\n");
  for (i = 0; i < 200000; i++) text[k++] = 'x';
  k += (size_t)sprintf(text + k, "\nafter\n");
  text[k] = 0;
  lb_lines_init(&b, 1000, 0);
  n = feed(&b, text, 4096, out, 8, &tl);
  CHECK_EQ_INT(tl, 1);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(out[0], "short");
  CHECK_EQ_STR(out[1], "after");
  /* memory stayed bounded: never much more than max_line + a chunk */
  CHECK(b.cap <= 1000 + 4 * LB_LINES_CHUNK);
  lb_lines_free(&b);
  free(text);
}

static void oversized_truncate_mode(void) {
  lb_lines b;
  char out[8][64];
  int tl, n;
  lb_lines_init(&b, 4, 1);
  n = feed(&b, "abcdefghij\nok\n", 100, out, 8, &tl);
  CHECK_EQ_INT(tl, 0);
  CHECK(n >= 2);
  CHECK_EQ_STR(out[0], "abcd");
  CHECK_EQ_STR(out[n - 1], "ok");
  lb_lines_free(&b);
}

static void exactly_max_line(void) {
  lb_lines b;
  char out[8][64];
  int tl, n;
  lb_lines_init(&b, 5, 0);
  n = feed(&b, "12345\n123456\n12345", 2, out, 8, &tl);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(tl, 1);
  CHECK_EQ_STR(out[0], "12345");
  CHECK_EQ_STR(out[1], "12345");
  lb_lines_free(&b);
}

static void many_lines_reuse_buffer(void) {
  lb_lines b;
  int i, count = 0;
  lb_lines_init(&b, 1 << 20, 0);
  for (i = 0; i < 20000; i++) {
    size_t room;
    char *dst = lb_lines_reserve(&b, &room);
    const char *line;
    size_t ll;
    int k = snprintf(dst, room, "{\"i\":%d}\n", i);
    lb_lines_commit(&b, (size_t)k);
    while (lb_lines_next(&b, &line, &ll) == LB_LINES_OK) count++;
  }
  CHECK_EQ_INT(count, 20000);
  CHECK(b.cap <= 8 * LB_LINES_CHUNK);
  lb_lines_free(&b);
}

TEST_LIST {
  {"split_reads", split_reads},
  {"crlf_and_empty", crlf_and_empty},
  {"oversized_is_error_and_skipped", oversized_is_error_and_skipped},
  {"oversized_truncate_mode", oversized_truncate_mode},
  {"exactly_max_line", exactly_max_line},
  {"many_lines_reuse_buffer", many_lines_reuse_buffer},
  {NULL, NULL}
};
LBTEST_MAIN
