/* farm_json: JSON <-> MessagePack (see farm_json.h).
 *
 * Reader: a recursive-descent parser run twice over the same text. The
 * first pass (no packer) validates the whole text and records the member
 * count of every array and object, in the order their opening brackets
 * appear, in a vector (inline for small texts, heap beyond). The second
 * pass walks the text again with the packer, reading the counts back in
 * the same order to emit each map/array header before its members. Strings
 * are streamed: a scan computes the decoded length, then raw runs are
 * copied straight from the input and escapes decoded into a few bytes, so
 * no string is ever copied into a buffer. Recursion is bounded by
 * FARM_JSON_MAX_DEPTH. Decimal numbers go through strtod_l with a "C"
 * locale object created once, so the process locale never matters.
 *
 * Writer: recursion over the msgpack_object tree through fwrite, runs of
 * characters that need no escaping are written in one call. Doubles are
 * printed with snprintf and the decimal point, whatever the locale made of
 * it, is rewritten to '.'. Every write is checked and the first failure is
 * returned as -errno.
 */
#include "farm_json.h"
#include "farm_utf8.h"

#include "farm_err.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

/* ------------------------------------------------------------------ */
/* shared helpers                                                      */
/* ------------------------------------------------------------------ */

static locale_t s_c_locale_obj;
static once_flag s_c_locale_once = ONCE_FLAG_INIT;

static void s_c_locale_init(void) {
    s_c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The "C" locale object, or (locale_t)0 if it could not be created. */
static locale_t s_c_locale(void) {
    call_once(&s_c_locale_once, s_c_locale_init);
    return s_c_locale_obj;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 (farm_utf8.h). */
static size_t s_utf8_len(const unsigned char *p, size_t avail) {
    uint32_t cp;
    return farm_utf8_next(p, avail, &cp);
}

static bool s_utf8_valid(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = s_utf8_len(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}


/* ------------------------------------------------------------------ */
/* reader                                                              */
/* ------------------------------------------------------------------ */

#define S_INLINE_COUNTS 32
#define S_NUM_INLINE 64

typedef struct {
    const char *start; /* text[0] */
    const char *p;     /* next byte to read */
    const char *end;   /* text + len */
    msgpack_packer *pk; /* NULL in the validating pass */
    int depth;
    size_t *counts;    /* member counts, one per container, pre-order */
    size_t ncounts;
    size_t cap;
    size_t next;       /* emitting pass: next count to use */
    size_t inl[S_INLINE_COUNTS];
    char *err;
    size_t errlen;
} s_parser;

__attribute__((format(printf, 4, 5)))
static int s_fail_at(s_parser *P, const char *at, int code, const char *fmt, ...) {
    if (P->err == NULL || P->errlen == 0)
        return code;
    size_t line = 1, col = 1;
    for (const char *q = P->start; q < at && q < P->end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) { /* count characters, not bytes */
            col++;
        }
    }
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (n < 0)
        what[0] = '\0';
    n = snprintf(P->err, P->errlen, "invalid JSON at line %zu column %zu: %s", line, col, what);
    if (n < 0)
        P->err[0] = '\0';
    return code;
}

static int s_fail_plain(s_parser *P, int code, const char *msg) {
    if (P->err != NULL && P->errlen > 0) {
        int n = snprintf(P->err, P->errlen, "%s", msg);
        if (n < 0)
            P->err[0] = '\0';
    }
    return code;
}

/* Map a packer return value to ours. */
static int s_pk(s_parser *P, int r) {
    if (r != 0)
        return s_fail_plain(P, FARM_EINTERNAL, "could not write MessagePack output");
    return 0;
}

/* Report an unexpected byte (or the end of input) at P->p. */
static int s_unexpected(s_parser *P) {
    if (P->p >= P->end)
        return s_fail_at(P, P->p, FARM_EBADREQ, "unexpected end of input");
    unsigned char c = (unsigned char)*P->p;
    if (c > 0x20 && c < 0x7F)
        return s_fail_at(P, P->p, FARM_EBADREQ, "unexpected character '%c'", c);
    return s_fail_at(P, P->p, FARM_EBADREQ, "unexpected byte 0x%02x", c);
}

static void s_ws(s_parser *P) {
    while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r'))
        P->p++;
}

static bool s_isdigit(const s_parser *P, const char *q) {
    return q < P->end && *q >= '0' && *q <= '9';
}

static int s_hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The four hex digits at q as a number, or -1 if there are not four. */
static long s_hex4(const s_parser *P, const char *q) {
    if (P->end - q < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = s_hexval(q[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Scan the string whose opening quote is at P->p; on success P->p is past
 * the closing quote and *outlen holds the decoded length. If body is not
 * NULL the decoded bytes are also written through it (str body). */
static int s_string_scan(s_parser *P, msgpack_packer *body, size_t *outlen) {
    const char *open = P->p;
    const char *q = open + 1;
    const char *run = q; /* start of the raw run not yet written */
    size_t n = 0;
    int rc;
    for (;;) {
        if (q >= P->end)
            return s_fail_at(P, open, FARM_EBADREQ, "unterminated string");
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            if (body != NULL && q > run && (rc = s_pk(P, msgpack_pack_str_body(body, run, (size_t)(q - run)))) != 0)
                return rc;
            P->p = q + 1;
            *outlen = n;
            return 0;
        }
        if (c < 0x20)
            return s_fail_at(P, q, FARM_EBADREQ, "unescaped control character 0x%02x in string", c);
        if (c >= 0x80) {
            size_t k = s_utf8_len((const unsigned char *)q, (size_t)(P->end - q));
            if (k == 0)
                return s_fail_at(P, q, FARM_EBADREQ, "invalid UTF-8 in string");
            q += k;
            n += k;
            continue;
        }
        if (c != '\\') {
            q++;
            n++;
            continue;
        }
        /* an escape */
        if (body != NULL && q > run && (rc = s_pk(P, msgpack_pack_str_body(body, run, (size_t)(q - run)))) != 0)
            return rc;
        if (q + 1 >= P->end)
            return s_fail_at(P, open, FARM_EBADREQ, "unterminated string");
        unsigned char dec[4];
        size_t dlen = 1;
        const char *esc = q;
        switch (q[1]) {
        case '"': dec[0] = '"'; break;
        case '\\': dec[0] = '\\'; break;
        case '/': dec[0] = '/'; break;
        case 'b': dec[0] = '\b'; break;
        case 'f': dec[0] = '\f'; break;
        case 'n': dec[0] = '\n'; break;
        case 'r': dec[0] = '\r'; break;
        case 't': dec[0] = '\t'; break;
        case 'u': {
            long u = s_hex4(P, q + 2);
            if (u < 0)
                return s_fail_at(P, esc, FARM_EBADREQ, "invalid \\u escape");
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return s_fail_at(P, esc, FARM_EBADREQ, "lone surrogate \\u%04" PRIX32, cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = -1;
                if (P->end - q >= 8 && q[6] == '\\' && q[7] == 'u')
                    lo = s_hex4(P, q + 8);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return s_fail_at(P, esc, FARM_EBADREQ, "lone surrogate \\u%04" PRIX32, cp);
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                q += 6; /* the second escape */
            }
            dlen = farm_utf8_put(dec, cp);
            q += 4; /* the hex digits */
            break;
        }
        default: {
            unsigned char e = (unsigned char)q[1];
            if (e > 0x20 && e < 0x7F)
                return s_fail_at(P, esc, FARM_EBADREQ, "invalid escape '\\%c'", e);
            return s_fail_at(P, esc, FARM_EBADREQ, "invalid escape");
        }
        }
        q += 2;
        n += dlen;
        if (body != NULL && (rc = s_pk(P, msgpack_pack_str_body(body, dec, dlen))) != 0)
            return rc;
        run = q;
    }
}

static int s_string(s_parser *P) {
    const char *open = P->p;
    size_t n;
    int rc = s_string_scan(P, NULL, &n);
    if (rc != 0 || P->pk == NULL)
        return rc;
    if (n > UINT32_MAX)
        return s_fail_at(P, open, FARM_ETOOLARGE, "string longer than %" PRIu32 " bytes", UINT32_MAX);
    if ((rc = s_pk(P, msgpack_pack_str(P->pk, n))) != 0)
        return rc;
    P->p = open;
    return s_string_scan(P, P->pk, &n);
}

static int s_number(s_parser *P) {
    const char *s = P->p;
    const char *q = s;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    if (!s_isdigit(P, q))
        return s_fail_at(P, q, FARM_EBADREQ, "invalid number: expected a digit");
    if (*q == '0') {
        q++;
        if (s_isdigit(P, q))
            return s_fail_at(P, s, FARM_EBADREQ, "invalid number: leading zero");
    } else {
        while (s_isdigit(P, q))
            q++;
    }
    const char *int_end = q;
    bool integral = true;
    if (q < P->end && *q == '.') {
        integral = false;
        q++;
        if (!s_isdigit(P, q))
            return s_fail_at(P, q, FARM_EBADREQ, "invalid number: expected a digit after '.'");
        while (s_isdigit(P, q))
            q++;
    }
    if (q < P->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < P->end && (*q == '+' || *q == '-'))
            q++;
        if (!s_isdigit(P, q))
            return s_fail_at(P, q, FARM_EBADREQ, "invalid number: expected a digit in the exponent");
        while (s_isdigit(P, q))
            q++;
    }
    P->p = q;
    if (P->pk == NULL)
        return 0;

    if (integral) {
        uint64_t mag = 0;
        bool overflow = false;
        for (const char *d = neg ? s + 1 : s; d < int_end; d++) {
            unsigned v = (unsigned)(*d - '0');
            if (mag > (UINT64_MAX - v) / 10) {
                overflow = true;
                break;
            }
            mag = mag * 10 + v;
        }
        if (!overflow) {
            if (neg && mag <= (uint64_t)INT64_MAX + 1) {
                int64_t v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
                return s_pk(P, msgpack_pack_int64(P->pk, v));
            }
            if (!neg && mag <= (uint64_t)INT64_MAX)
                return s_pk(P, msgpack_pack_int64(P->pk, (int64_t)mag));
            if (!neg)
                return s_pk(P, msgpack_pack_uint64(P->pk, mag));
        }
    }

    locale_t c_loc = s_c_locale();
    if (c_loc == (locale_t)0)
        return s_fail_plain(P, FARM_EINTERNAL, "cannot create the C locale");
    size_t len = (size_t)(q - s);
    char inl[S_NUM_INLINE];
    char *buf = inl;
    if (len >= sizeof inl) {
        buf = malloc(len + 1);
        if (buf == NULL)
            return s_fail_plain(P, FARM_EINTERNAL, "out of memory");
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    double d = strtod_l(buf, NULL, c_loc);
    if (buf != inl)
        free(buf);
    return s_pk(P, msgpack_pack_double(P->pk, d));
}

static int s_literal(s_parser *P) {
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(P->end - P->p) >= n && memcmp(P->p, words[i], n) == 0) {
            P->p += n;
            if (P->pk == NULL)
                return 0;
            if (i == 0)
                return s_pk(P, msgpack_pack_true(P->pk));
            if (i == 1)
                return s_pk(P, msgpack_pack_false(P->pk));
            return s_pk(P, msgpack_pack_nil(P->pk));
        }
    }
    return s_fail_at(P, P->p, FARM_EBADREQ, "invalid literal");
}

/* Enter a container whose opening bracket is at P->p. Validating pass:
 * reserve a count slot (*slot). Emitting pass: fetch the count into *n. */
static int s_open(s_parser *P, size_t *slot, size_t *n) {
    if (++P->depth > FARM_JSON_MAX_DEPTH)
        return s_fail_at(P, P->p, FARM_ETOOLARGE, "nesting deeper than %d levels", FARM_JSON_MAX_DEPTH);
    P->p++;
    if (P->pk != NULL) {
        if (P->next >= P->ncounts) /* cannot happen: both passes see the same text */
            return s_fail_plain(P, FARM_EINTERNAL, "JSON reader: container count mismatch");
        *n = P->counts[P->next++];
        return 0;
    }
    if (P->ncounts == P->cap) {
        if (P->cap > SIZE_MAX / 2 / sizeof *P->counts)
            return s_fail_plain(P, FARM_EINTERNAL, "out of memory");
        size_t ncap = P->cap * 2;
        size_t *nc;
        if (P->counts == P->inl) {
            nc = malloc(ncap * sizeof *nc);
            if (nc != NULL)
                memcpy(nc, P->inl, P->ncounts * sizeof *nc);
        } else {
            nc = realloc(P->counts, ncap * sizeof *nc);
        }
        if (nc == NULL)
            return s_fail_plain(P, FARM_EINTERNAL, "out of memory");
        P->counts = nc;
        P->cap = ncap;
    }
    *slot = P->ncounts++;
    P->counts[*slot] = 0;
    return 0;
}

/* Leave a container opened at `open` that had n members. */
static int s_close(s_parser *P, const char *open, size_t slot, size_t n) {
    P->depth--;
    if (P->pk != NULL)
        return 0;
    if (n > UINT32_MAX)
        return s_fail_at(P, open, FARM_ETOOLARGE, "more than %" PRIu32 " members", UINT32_MAX);
    P->counts[slot] = n;
    return 0;
}

static int s_value(s_parser *P);

static int s_array(s_parser *P) {
    const char *open = P->p;
    size_t slot = 0, n = 0;
    int rc = s_open(P, &slot, &n);
    if (rc != 0)
        return rc;
    if (P->pk != NULL && (rc = s_pk(P, msgpack_pack_array(P->pk, n))) != 0)
        return rc;
    size_t members = 0;
    s_ws(P);
    if (P->p < P->end && *P->p == ']') {
        P->p++;
        return s_close(P, open, slot, 0);
    }
    for (;;) {
        if ((rc = s_value(P)) != 0)
            return rc;
        members++;
        s_ws(P);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            continue;
        }
        if (P->p < P->end && *P->p == ']') {
            P->p++;
            return s_close(P, open, slot, members);
        }
        return s_fail_at(P, P->p, FARM_EBADREQ, "expected ',' or ']'");
    }
}

static int s_object(s_parser *P) {
    const char *open = P->p;
    size_t slot = 0, n = 0;
    int rc = s_open(P, &slot, &n);
    if (rc != 0)
        return rc;
    if (P->pk != NULL && (rc = s_pk(P, msgpack_pack_map(P->pk, n))) != 0)
        return rc;
    size_t members = 0;
    s_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
        return s_close(P, open, slot, 0);
    }
    for (;;) {
        s_ws(P);
        if (P->p >= P->end || *P->p != '"')
            return s_fail_at(P, P->p, FARM_EBADREQ, "expected a string key");
        if ((rc = s_string(P)) != 0)
            return rc;
        s_ws(P);
        if (P->p >= P->end || *P->p != ':')
            return s_fail_at(P, P->p, FARM_EBADREQ, "expected ':'");
        P->p++;
        if ((rc = s_value(P)) != 0)
            return rc;
        members++;
        s_ws(P);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            continue;
        }
        if (P->p < P->end && *P->p == '}') {
            P->p++;
            return s_close(P, open, slot, members);
        }
        return s_fail_at(P, P->p, FARM_EBADREQ, "expected ',' or '}'");
    }
}

static int s_value(s_parser *P) {
    s_ws(P);
    if (P->p >= P->end)
        return s_unexpected(P);
    switch (*P->p) {
    case '{': return s_object(P);
    case '[': return s_array(P);
    case '"': return s_string(P);
    case 't':
    case 'f':
    case 'n': return s_literal(P);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return s_number(P);
    default: return s_unexpected(P);
    }
}

static int s_document(s_parser *P) {
    P->p = P->start;
    P->depth = 0;
    P->next = 0;
    s_ws(P);
    if (P->p >= P->end)
        return s_fail_at(P, P->p, FARM_EBADREQ, "empty input");
    int rc = s_value(P);
    if (rc != 0)
        return rc;
    s_ws(P);
    if (P->p < P->end)
        return s_fail_at(P, P->p, FARM_EBADREQ, "unexpected data after the value");
    return 0;
}

int farm_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, char *err, size_t errlen) {
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (text == NULL)
        len = 0;
    s_parser P = {0};
    P.start = len > 0 ? text : "";
    P.end = P.start + len;
    P.counts = P.inl;
    P.cap = S_INLINE_COUNTS;
    P.err = err;
    P.errlen = errlen;
    if (pk == NULL)
        return s_fail_plain(&P, FARM_EINTERNAL, "no packer");

    int rc = s_document(&P); /* validate, count */
    if (rc == 0) {
        P.pk = pk;
        rc = s_document(&P); /* emit */
    }
    if (P.counts != P.inl)
        free(P.counts);
    return rc;
}

/* ------------------------------------------------------------------ */
/* writer                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    FILE *f;
    int indent; /* spaces per level, 0 for compact */
} s_writer;

static int s_ioerr(void) {
    return errno > 0 ? -errno : -EIO;
}

static int s_put(s_writer *w, const void *b, size_t n) {
    if (n > 0 && fwrite(b, 1, n, w->f) != n)
        return s_ioerr();
    return 0;
}

static int s_puts(s_writer *w, const char *s) {
    return s_put(w, s, strlen(s));
}

/* In pretty mode: a newline and the indentation of `level`. */
static int s_newline(s_writer *w, int level) {
    static const char spaces[] = "                                                                ";
    if (w->indent <= 0)
        return 0;
    int rc = s_put(w, "\n", 1);
    if (rc != 0)
        return rc;
    size_t todo = (size_t)w->indent * (size_t)level;
    while (todo > 0) {
        size_t k = todo < sizeof spaces - 1 ? todo : sizeof spaces - 1;
        if ((rc = s_put(w, spaces, k)) != 0)
            return rc;
        todo -= k;
    }
    return 0;
}

/* Write s[0..n) as a JSON string, escaping as needed and replacing every
 * byte that is not part of valid UTF-8 by \ufffd. */
static int s_write_str(s_writer *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    /* msgpack-c leaves ptr NULL for an empty str or bin; NULL + 0 is UB. */
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    int rc = s_put(w, "\"", 1);
    if (rc != 0)
        return rc;
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[7];
        size_t k = 1;
        if (c >= 0x80) {
            k = s_utf8_len(p + i, n - i);
            if (k > 0) {
                i += k;
                continue;
            }
            esc = "\\ufffd";
            k = 1;
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            switch (c) {
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                memcpy(ubuf, "\\u00", 4);
                ubuf[4] = hex[c >> 4];
                ubuf[5] = hex[c & 0xF];
                ubuf[6] = '\0';
                esc = ubuf;
                break;
            }
        } else {
            i++;
            continue;
        }
        if ((rc = s_put(w, p + run, i - run)) != 0)
            return rc;
        if ((rc = s_puts(w, esc)) != 0)
            return rc;
        i += k;
        run = i;
    }
    if ((rc = s_put(w, p + run, n - run)) != 0)
        return rc;
    return s_put(w, "\"", 1);
}

/* Write p[0..n) in standard base64 with padding, inside quotes. */
static int s_write_base64(s_writer *w, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char buf[256];
    size_t bl = 0;
    int rc = s_put(w, "\"", 1);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf[bl++] = tab[(v >> 18) & 63];
        buf[bl++] = tab[(v >> 12) & 63];
        buf[bl++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        buf[bl++] = i + 2 < n ? tab[v & 63] : '=';
        if (bl + 4 > sizeof buf) {
            if ((rc = s_put(w, buf, bl)) != 0)
                return rc;
            bl = 0;
        }
    }
    if ((rc = s_put(w, buf, bl)) != 0)
        return rc;
    return s_put(w, "\"", 1);
}

/* snprintf writes the locale's decimal point, which may be ',' or even
 * several bytes; %g output is otherwise only [-+0-9e], so any other run
 * of bytes is the decimal point and becomes '.'. */
static void s_fix_decimal_point(char *s) {
    char *o = s;
    for (const char *q = s; *q != '\0';) {
        if ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == 'e') {
            *o++ = *q++;
            continue;
        }
        *o++ = '.';
        while (*q != '\0' && !((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == 'e'))
            q++;
    }
    *o = '\0';
}

static int s_write_double(s_writer *w, double v, bool f32) {
    if (isnan(v) || isinf(v))
        return s_put(w, "null", 4);
    locale_t c_loc = s_c_locale();
    int lo = f32 ? 6 : 15, hi = f32 ? 9 : 17;
    if (c_loc == (locale_t)0)
        lo = hi; /* cannot check round trips: the longest form always does */
    char buf[64];
    for (int prec = lo; prec <= hi; prec++) {
        int n = snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= sizeof buf)
            return -EOVERFLOW; /* cannot happen for a finite double */
        s_fix_decimal_point(buf);
        if (prec == hi)
            break;
        if (f32 ? strtof_l(buf, NULL, c_loc) == (float)v : strtod_l(buf, NULL, c_loc) == v)
            break;
    }
    return s_puts(w, buf);
}

static int s_write_value(s_writer *w, const msgpack_object *o, int level);

/* A map key: str as is, anything else as its compact JSON inside a str. */
static int s_write_key(s_writer *w, const msgpack_object *k) {
    if (k->type == MSGPACK_OBJECT_STR)
        return s_write_str(w, k->via.str.ptr, k->via.str.size);
    char *buf = NULL;
    size_t size = 0;
    FILE *mf = open_memstream(&buf, &size);
    if (mf == NULL)
        return s_ioerr();
    s_writer kw = {.f = mf, .indent = 0};
    int rc = s_write_value(&kw, k, 0);
    if (rc == 0 && ferror(mf))
        rc = -EIO;
    if (fclose(mf) != 0 && rc == 0)
        rc = s_ioerr();
    if (rc == 0)
        rc = s_write_str(w, buf, size);
    free(buf);
    return rc;
}

/* {"ext":type,"base64":"..."} or {"base64":"..."} (ext NULL). */
static int s_write_b64_object(s_writer *w, const int8_t *ext, const char *p, size_t n, int level) {
    const char *sep = w->indent > 0 ? ": " : ":";
    int rc = s_put(w, "{", 1);
    if (rc != 0)
        return rc;
    if (ext != NULL) {
        if ((rc = s_newline(w, level + 1)) != 0 || (rc = s_puts(w, "\"ext\"")) != 0 ||
            (rc = s_puts(w, sep)) != 0)
            return rc;
        if (fprintf(w->f, "%d", (int)*ext) < 0)
            return s_ioerr();
        if ((rc = s_put(w, ",", 1)) != 0)
            return rc;
    }
    if ((rc = s_newline(w, level + 1)) != 0 || (rc = s_puts(w, "\"base64\"")) != 0 ||
        (rc = s_puts(w, sep)) != 0 || (rc = s_write_base64(w, (const unsigned char *)p, n)) != 0 ||
        (rc = s_newline(w, level)) != 0)
        return rc;
    return s_put(w, "}", 1);
}

static int s_write_value(s_writer *w, const msgpack_object *o, int level) {
    int rc;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return s_put(w, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? s_put(w, "true", 4) : s_put(w, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (fprintf(w->f, "%" PRIu64, o->via.u64) < 0)
            return s_ioerr();
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (fprintf(w->f, "%" PRId64, o->via.i64) < 0)
            return s_ioerr();
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
        return s_write_double(w, o->via.f64, true);
    case MSGPACK_OBJECT_FLOAT64:
        return s_write_double(w, o->via.f64, false);
    case MSGPACK_OBJECT_STR:
        return s_write_str(w, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        if (s_utf8_valid((const unsigned char *)o->via.bin.ptr, o->via.bin.size))
            return s_write_str(w, o->via.bin.ptr, o->via.bin.size);
        return s_write_b64_object(w, NULL, o->via.bin.ptr, o->via.bin.size, level);
    case MSGPACK_OBJECT_EXT:
        return s_write_b64_object(w, &o->via.ext.type, o->via.ext.ptr, o->via.ext.size, level);
    case MSGPACK_OBJECT_ARRAY: {
        const msgpack_object_array *a = &o->via.array;
        if ((rc = s_put(w, "[", 1)) != 0)
            return rc;
        for (uint32_t i = 0; i < a->size; i++) {
            if (i > 0 && (rc = s_put(w, ",", 1)) != 0)
                return rc;
            if ((rc = s_newline(w, level + 1)) != 0 || (rc = s_write_value(w, &a->ptr[i], level + 1)) != 0)
                return rc;
        }
        if (a->size > 0 && (rc = s_newline(w, level)) != 0)
            return rc;
        return s_put(w, "]", 1);
    }
    case MSGPACK_OBJECT_MAP: {
        const msgpack_object_map *m = &o->via.map;
        const char *sep = w->indent > 0 ? ": " : ":";
        if ((rc = s_put(w, "{", 1)) != 0)
            return rc;
        for (uint32_t i = 0; i < m->size; i++) {
            if (i > 0 && (rc = s_put(w, ",", 1)) != 0)
                return rc;
            if ((rc = s_newline(w, level + 1)) != 0 || (rc = s_write_key(w, &m->ptr[i].key)) != 0 ||
                (rc = s_puts(w, sep)) != 0 || (rc = s_write_value(w, &m->ptr[i].val, level + 1)) != 0)
                return rc;
        }
        if (m->size > 0 && (rc = s_newline(w, level)) != 0)
            return rc;
        return s_put(w, "}", 1);
    }
    default:
        return s_put(w, "null", 4);
    }
}

int farm_json_write(FILE *out, const msgpack_object *o, int indent) {
    if (out == NULL || o == NULL)
        return -EINVAL;
    s_writer w = {.f = out, .indent = indent > 0 ? indent : 0};
    int rc = s_write_value(&w, o, 0);
    if (rc == 0 && ferror(out))
        rc = -EIO; /* an earlier, deferred failure: errno is not ours */
    return rc;
}
