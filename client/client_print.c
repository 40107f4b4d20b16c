/* client_print: reading replies and showing them to people.
 *
 * The reader trusts nothing: every field is checked for its type as it is
 * read, and the first surprise is remembered so that a command reads
 * everything, checks once and then either prints the whole table or says
 * "malformed reply". Text from the farm (job names, error messages, worker
 * ids) can hold anything, so every string shown is passed through
 * cli_fmt_text, which escapes control bytes and invalid UTF-8: a task must
 * not be able to drive the user's terminal. Tables measure cells in
 * characters, not bytes, so UTF-8 names line up.
 */
#include "client.h"
#include "farm_json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- reader ----------------------------------------------------------- */

void cli_rd_fail(cli_rd_t *r, const char *fmt, ...) {
    if (r->bad)
        return;
    r->bad = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

static const msgpack_object *s_get(cli_rd_t *r, const msgpack_object *m, const char *key, bool required) {
    if (r->bad)
        return NULL;
    if (!m || m->type != MSGPACK_OBJECT_MAP) {
        cli_rd_fail(r, "expected a map with \"%s\"", key);
        return NULL;
    }
    const msgpack_object *v = farm_msg_get(m, key);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        if (required)
            cli_rd_fail(r, "\"%s\" is missing", key);
        return NULL;
    }
    return v;
}

const msgpack_object *cli_rd_any(const msgpack_object *m, const char *key) {
    const msgpack_object *v = farm_msg_get(m, key);
    return v && v->type != MSGPACK_OBJECT_NIL ? v : NULL;
}

bool cli_rd_int(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, int64_t *out) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (!v)
        return false;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return true;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return true;
    }
    cli_rd_fail(r, "\"%s\" is not an integer", key);
    return false;
}

bool cli_rd_num(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, double *out) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (!v)
        return false;
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)v->via.u64; return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)v->via.i64; return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = v->via.f64; return true;
    default: cli_rd_fail(r, "\"%s\" is not a number", key); return false;
    }
}

bool cli_rd_bool(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, bool *out) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (!v)
        return false;
    if (v->type != MSGPACK_OBJECT_BOOLEAN) {
        cli_rd_fail(r, "\"%s\" is not a boolean", key);
        return false;
    }
    *out = v->via.boolean;
    return true;
}

bool cli_rd_str(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, farm_str_t *out) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (!v)
        return false;
    if (v->type != MSGPACK_OBJECT_STR) {
        cli_rd_fail(r, "\"%s\" is not a string", key);
        return false;
    }
    *out = (farm_str_t){v->via.str.size ? v->via.str.ptr : "", v->via.str.size};
    return true;
}

bool cli_rd_bytes(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, farm_str_t *out) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (!v)
        return false;
    if (v->type == MSGPACK_OBJECT_BIN) {
        *out = (farm_str_t){v->via.bin.size ? v->via.bin.ptr : "", v->via.bin.size};
        return true;
    }
    if (v->type == MSGPACK_OBJECT_STR) {
        *out = (farm_str_t){v->via.str.size ? v->via.str.ptr : "", v->via.str.size};
        return true;
    }
    cli_rd_fail(r, "\"%s\" is not binary or a string", key);
    return false;
}

const msgpack_object *cli_rd_map(cli_rd_t *r, const msgpack_object *m, const char *key, bool required) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (v && v->type != MSGPACK_OBJECT_MAP) {
        cli_rd_fail(r, "\"%s\" is not a map", key);
        return NULL;
    }
    return v;
}

const msgpack_object *cli_rd_array(cli_rd_t *r, const msgpack_object *m, const char *key, bool required) {
    const msgpack_object *v = s_get(r, m, key, required);
    if (v && v->type != MSGPACK_OBJECT_ARRAY) {
        cli_rd_fail(r, "\"%s\" is not an array", key);
        return NULL;
    }
    return v;
}

/* ---- text ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (left bytes), 0 if invalid. */
static size_t s_utf8_len(const unsigned char *p, size_t left) {
    unsigned char c = p[0];
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* The display form of the character at p: bytes into out (8), its width
 * in characters into *w; returns the bytes of input consumed. */
static size_t s_piece(const unsigned char *p, size_t left, char out[8], size_t *olen, size_t *w) {
    size_t n = s_utf8_len(p, left);
    if (n == 1 && p[0] >= 0x20 && p[0] < 0x7F) {
        out[0] = (char)p[0];
        *olen = *w = 1;
        return 1;
    }
    if (n == 1 && (p[0] == '\n' || p[0] == '\t' || p[0] == '\r')) {
        out[0] = '\\';
        out[1] = p[0] == '\n' ? 'n' : p[0] == '\t' ? 't' : 'r';
        *olen = *w = 2;
        return 1;
    }
    if (n == 2 && p[0] == 0xC2 && p[1] < 0xA0) { /* C1 controls */
        *olen = *w = (size_t)snprintf(out, 8, "\\u%04x", p[1]);
        return 2;
    }
    if (n > 1) {
        memcpy(out, p, n);
        *olen = n;
        *w = 1;
        return n;
    }
    *olen = *w = (size_t)snprintf(out, 8, "\\x%02x", p[0]);
    return 1;
}

char *cli_fmt_text(char *buf, size_t n, farm_str_t s, size_t max) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    char piece[8];
    size_t olen, w, total = 0;
    buf[0] = '\0';
    if (!p)
        return buf;
    for (size_t i = 0; i < s.len;) {
        i += s_piece(p + i, s.len - i, piece, &olen, &w);
        total += w;
    }
    size_t limit = max && total > max ? (max > 3 ? max - 3 : 0) : total;
    size_t o = 0, chars = 0, i = 0;
    bool cut = limit < total;
    while (i < s.len) {
        size_t adv = s_piece(p + i, s.len - i, piece, &olen, &w);
        if (chars + w > limit || o + olen + 4 > n) {
            cut = true;
            break;
        }
        memcpy(buf + o, piece, olen);
        o += olen;
        chars += w;
        i += adv;
    }
    if (cut && o + 4 <= n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static void s_span(char *buf, size_t n, int64_t ms) {
    if (ms < 10000)
        snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
    else if (ms < 60000)
        snprintf(buf, n, "%" PRId64 "s", ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, n, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
    else
        snprintf(buf, n, "%" PRId64 "d%02" PRId64 "h", ms / 86400000, ms / 3600000 % 24);
}

char *cli_fmt_age(char *buf, size_t n, int64_t ms, int64_t now_ms) {
    char span[32];
    int64_t d = now_ms - ms;
    if (d >= 0) {
        s_span(span, sizeof span, d);
        snprintf(buf, n, "%s ago", span);
    } else {
        s_span(span, sizeof span, d < -INT64_MAX / 2 ? INT64_MAX / 2 : -d);
        snprintf(buf, n, "in %s", span);
    }
    return buf;
}

char *cli_fmt_time(char *buf, size_t n, int64_t ms, int64_t now_ms) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char day[40], age[40];
    if (ms < 0 || !localtime_r(&t, &tm) || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, n, "%" PRId64 " ms", ms);
        return buf;
    }
    snprintf(buf, n, "%s.%03d (%s)", day, (int)(ms % 1000), cli_fmt_age(age, sizeof age, ms, now_ms));
    return buf;
}

char *cli_fmt_dur(char *buf, size_t n, int64_t ms) {
    if (ms < 0)
        snprintf(buf, n, "-");
    else if (ms < 1000)
        snprintf(buf, n, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.2fs", (double)ms / 1000.0);
    else
        s_span(buf, n, ms);
    return buf;
}

char *cli_fmt_value(char *buf, size_t n, const msgpack_object *o, size_t max) {
    if (!o) {
        snprintf(buf, n, "-");
        return buf;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: snprintf(buf, n, "-"); break;
    case MSGPACK_OBJECT_BOOLEAN: snprintf(buf, n, "%s", o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: snprintf(buf, n, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: snprintf(buf, n, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: snprintf(buf, n, "%.6g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: cli_fmt_text(buf, n, (farm_str_t){o->via.str.ptr, o->via.str.size}, max); break;
    case MSGPACK_OBJECT_BIN: snprintf(buf, n, "<%" PRIu32 " bytes>", o->via.bin.size); break;
    default: {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) {
            snprintf(buf, n, "?");
            break;
        }
        int rc = farm_json_write(f, o, 0);
        if (fclose(f) != 0 || rc != 0)
            snprintf(buf, n, "?");
        else
            cli_fmt_text(buf, n, (farm_str_t){text, (uint32_t)len}, max);
        free(text);
        break;
    }
    }
    return buf;
}

/* ---- tables ----------------------------------------------------------- */

void cli_table_init(cli_table_t *t, size_t ncols, const char *align) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->align = align;
}

void cli_table_add(cli_table_t *t, const char *const *cells) {
    if (t->oom)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->ncols * sizeof *c);
        if (!c) {
            t->oom = true;
            return;
        }
        t->cells = c;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "-");
        if (!row[i]) {
            while (i--)
                free(row[i]);
            t->oom = true;
            return;
        }
    }
    t->nrows++;
}

void cli_table_kv(cli_table_t *t, const char *key, const char *fmt, ...) {
    char *v = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&v, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->oom = true;
        return;
    }
    const char *cells[2] = {key, v};
    cli_table_add(t, cells);
    free(v);
}

/* Width of a UTF-8 cell in characters (cells are already sanitised). */
static size_t s_width(const char *s) {
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

int cli_table_print(cli_table_t *t, FILE *out, int indent) {
    if (t->oom) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);
    if (!w) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t x = s_width(t->cells[r * t->ncols + c]);
            if (x > w[c])
                w[c] = x;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        fprintf(out, "%*s", indent, "");
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            size_t pad = w[c] - s_width(cell);
            bool right = t->align && t->align[c] == 'r';
            bool last = c + 1 == t->ncols;
            if (right)
                fprintf(out, "%*s", (int)pad, "");
            fputs(cell, out);
            if (!last)
                fprintf(out, "%*s", right ? 2 : (int)pad + 2, "");
        }
        fputc('\n', out);
    }
    free(w);
    return CLI_OK;
}

void cli_table_free(cli_table_t *t) {
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}
