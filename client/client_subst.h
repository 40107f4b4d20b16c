/* client_subst: GNU parallel's replacement strings ({} {.} {/} {//} {/.}
 * {#}) for `farm map`; see client_subst.c for their exact meaning. A small
 * standalone header so the unit test needs nothing else of the client. */
#ifndef CLIENT_SUBST_H
#define CLIENT_SUBST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when tmpl (NUL-terminated) holds at least one replacement string. */
bool cli_subst_has(const char *tmpl);

/* tmpl with every replacement string replaced for the input in[0..inlen)
 * (no NUL bytes expected; none are added) and the input number seq (from 1).
 * Returns a malloc'd NUL-terminated string the caller frees, its length in
 * *outlen (outlen may be NULL), or NULL when memory runs out. */
char *cli_subst(const char *tmpl, const char *in, size_t inlen, int64_t seq, size_t *outlen);

#endif
