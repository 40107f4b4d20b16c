/* client_subst: GNU parallel's replacement strings, for `farm map`.
 *
 * A map's command is a template: each argv element may hold replacement
 * strings that stand for the input of one task. The six farm map knows are
 * GNU parallel's own and mean exactly what they mean there (checked against
 * parallel 20221122 on edge cases such as "dir/", "/", ".bashrc"):
 *
 *   {}    the input line                       x/y.tar.gz
 *   {.}   without its extension                x/y.tar
 *   {/}   its basename: after the last '/'     y.tar.gz
 *   {//}  its dirname, as POSIX dirname(3)     x
 *   {/.}  basename without extension           y.tar
 *   {#}   the input's number, from 1           1
 *
 * The extension is the last '.' and what follows it, provided no '/' or
 * '.' follows it ("a.b/c" has none, ".bashrc" is all extension, "x." loses
 * its dot), which is parallel's s:\.[^/.]*$::. Replacement happens inside
 * an element too ("x{}y"), and nothing is ever quoted: each element is
 * one argv entry of an exec task, not shell text, so an input with spaces
 * or quotes stays one argument. This file has no state and no I/O, so the
 * unit tests call it directly.
 */
#include "client_subst.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_ALL, S_NOEXT, S_BASE, S_DIR, S_BASE_NOEXT, S_SEQ } s_kind_t;

/* Longest first: "{//}" before "{/}". */
static const struct {
    const char *tok;
    size_t len;
    s_kind_t kind;
} s_toks[] = {
    {"{//}", 4, S_DIR}, {"{/.}", 4, S_BASE_NOEXT}, {"{/}", 3, S_BASE},
    {"{.}", 3, S_NOEXT}, {"{#}", 3, S_SEQ},         {"{}", 2, S_ALL},
};
#define S_NTOKS (sizeof s_toks / sizeof s_toks[0])

/* The replacement string at p, or -1. *len gets its length. */
static int s_tok_at(const char *p, size_t *len) {
    for (size_t i = 0; i < S_NTOKS; i++)
        if (strncmp(p, s_toks[i].tok, s_toks[i].len) == 0) {
            *len = s_toks[i].len;
            return (int)i;
        }
    return -1;
}

bool cli_subst_has(const char *tmpl) {
    size_t len;
    for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{'))
        if (s_tok_at(p, &len) >= 0)
            return true;
    return false;
}

/* [s, s+n) without its extension: the length that remains. */
static size_t s_noext(const char *s, size_t n) {
    size_t i = n;
    while (i > 0 && s[i - 1] != '/' && s[i - 1] != '.')
        i--;
    return i > 0 && s[i - 1] == '.' ? i - 1 : n;
}

/* Offset of the basename of [s, s+n): just after the last '/'. */
static size_t s_base(const char *s, size_t n) {
    size_t i = n;
    while (i > 0 && s[i - 1] != '/')
        i--;
    return i;
}

/* POSIX dirname of [s, s+n) as a piece of s or a constant. */
static void s_dir(const char *s, size_t n, const char **out, size_t *olen) {
    size_t end = n;
    while (end > 1 && s[end - 1] == '/')
        end--;
    size_t i = end;
    while (i > 0 && s[i - 1] != '/')
        i--;
    if (n == 0 || i == 0) { /* "", "file", "dir/" */
        *out = ".";
        *olen = 1;
        return;
    }
    while (i > 1 && s[i - 1] == '/')
        i--;
    *out = s;
    *olen = i; /* "/abs" -> "/", "x/y" -> "x" */
}

/* What token i expands to for input (in, n) and number seq; num is a
 * caller's buffer for {#}. */
static void s_piece(s_kind_t k, const char *in, size_t n, char num[24], int64_t seq, const char **out,
                    size_t *olen) {
    size_t b;
    switch (k) {
    case S_ALL: *out = in; *olen = n; return;
    case S_NOEXT: *out = in; *olen = s_noext(in, n); return;
    case S_BASE: b = s_base(in, n); *out = in + b; *olen = n - b; return;
    case S_DIR: s_dir(in, n, out, olen); return;
    case S_BASE_NOEXT: b = s_base(in, n); *out = in + b; *olen = s_noext(in + b, n - b); return;
    case S_SEQ: *olen = (size_t)snprintf(num, 24, "%" PRId64, seq); *out = num; return;
    }
    *out = "";
    *olen = 0;
}

char *cli_subst(const char *tmpl, const char *in, size_t inlen, int64_t seq, size_t *outlen) {
    char num[24];
    char *buf = NULL;
    size_t total = 0;
    /* Two passes: measure, then fill. */
    for (int pass = 0; pass < 2; pass++) {
        size_t o = 0;
        for (const char *p = tmpl; *p;) {
            size_t tl;
            int t = *p == '{' ? s_tok_at(p, &tl) : -1;
            if (t < 0) {
                if (buf)
                    buf[o] = *p;
                o++;
                p++;
                continue;
            }
            const char *piece;
            size_t plen;
            s_piece(s_toks[t].kind, in, inlen, num, seq, &piece, &plen);
            if (buf)
                memcpy(buf + o, piece, plen);
            o += plen;
            p += tl;
        }
        if (pass == 0) {
            total = o;
            buf = malloc(total + 1);
            if (!buf)
                return NULL;
        } else {
            buf[o] = '\0';
        }
    }
    if (outlen)
        *outlen = total;
    return buf;
}
