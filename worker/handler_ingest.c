/* handler_ingest: record schemas and the ingest handler (see
 * handler_ingest.h).
 *
 * A schema is compiled once per task into a flat array of fields, each
 * with its kind, bounds and compiled pattern; checking a record is then one
 * pass over its keys (each must name a field, once) and one pass over the
 * fields (each present value in bounds, each required one present). The key
 * pass stops at the first unknown or repeated key, so a hostile record with
 * a million keys costs at most fields+1 lookups. Every message that quotes
 * a name from the input goes through s_clean(), so a reason is always
 * short printable ASCII whatever the record held.
 *
 * The handler owns nothing across tasks: the schema, the rejection list and
 * the regexes live for one call. Accepted records leave through
 * farm_task_record(), which copies them; the worker sends them to the sink
 * only with a successful result, and the sink stores them once.
 */
#include "handler_ingest.h"

#include "farm_msg.h"
#include "farm_proto.h"
#include "farm_time.h"
#include "worker_utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_INT, S_FLOAT, S_STR, S_BOOL } s_kind_t;

static const char *const s_kind_names[] = {"int", "float", "str", "bool"};

typedef struct {
    char name[WORKER_SCHEMA_NAME_MAX + 1]; /* NUL terminated, no NUL inside */
    size_t name_len;                       /* bytes of name */
    s_kind_t kind;                         /* the value's type */
    bool required;                         /* absent (or nil) rejects the record */
    bool has_min, has_max;                 /* int and float bounds given */
    int64_t imin, imax;                    /* int bounds */
    double fmin, fmax;                     /* float bounds */
    int64_t min_len, max_len;              /* str length in characters; max_len -1: none */
    bool has_re;                           /* re is compiled */
    regex_t re;                            /* the pattern, anchored at both ends */
    char pattern[WORKER_SCHEMA_PATTERN_MAX + 1]; /* as given, for messages */
    const char *what;                      /* built-in: what a pattern mismatch means, or NULL */
} s_field_t;

struct worker_schema {
    char name[WORKER_SCHEMA_NAME_MAX + 1]; /* for the result */
    size_t n;                              /* fields in use */
    s_field_t f[WORKER_SCHEMA_FIELDS_MAX]; /* the fields, in schema order */
};

/* ---- built-in schemas --------------------------------------------------- */

typedef struct {
    const char *name;
    s_kind_t kind;
    bool has_min, has_max;
    int64_t min, max;         /* int bounds */
    int64_t min_len, max_len; /* str bounds */
    const char *pattern;      /* str pattern or NULL */
    const char *what;         /* message for a pattern mismatch */
} s_builtin_field_t;

/* A plausible address: a dot-atom-ish local part, '@', dot-separated DNS
 * labels and a top-level domain of letters. Deliberately not RFC 5322. */
#define S_EMAIL_RE                                                                      \
    "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"              \
    "@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}"

static const s_builtin_field_t s_student[] = {
    {"id", S_INT, true, false, 1, 0, 0, -1, NULL, NULL},
    {"name", S_STR, false, false, 0, 0, 1, 100, ".*[^[:space:]].*", "a name that is not blank"},
    {"email", S_STR, false, false, 0, 0, 3, 254, S_EMAIL_RE, "a plausible e-mail address"},
    {"grade", S_INT, true, true, 1, 12, 0, -1, NULL, NULL},
};

static const struct {
    const char *name;
    const s_builtin_field_t *fields;
    size_t n;
} s_builtins[] = {
    {"student", s_student, sizeof s_student / sizeof s_student[0]},
};

/* ---- helpers ------------------------------------------------------------ */

/* Copy at most max bytes of p into dst (size n) as printable ASCII: every
 * other byte becomes '?'. Returns dst. */
static char *s_clean(char *dst, size_t n, const char *p, size_t len, size_t max) {
    size_t k = 0;
    for (size_t i = 0; i < len && i < max && k + 1 < n; i++) {
        unsigned char c = (unsigned char)p[i];
        dst[k++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    if (n)
        dst[k] = '\0';
    return dst;
}

/* Compile pattern p (len bytes) so that it must match the whole value.
 * Returns 0 or a regcomp error code, with the message in err. */
static int s_compile(s_field_t *f, const char *p, size_t len, char *err, size_t n) {
    char anchored[WORKER_SCHEMA_PATTERN_MAX + 8];
    snprintf(anchored, sizeof anchored, "^(%.*s)$", (int)len, p);
    memcpy(f->pattern, p, len);
    f->pattern[len] = '\0';
    int rc = regcomp(&f->re, anchored, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &f->re, why, sizeof why);
        snprintf(err, n, "pattern is not a valid extended regular expression: %s", why);
        return rc;
    }
    f->has_re = true;
    return 0;
}

static worker_schema_t *s_builtin(size_t which, char *err, size_t n) {
    worker_schema_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "%s", s_builtins[which].name);
    for (size_t i = 0; i < s_builtins[which].n; i++) {
        const s_builtin_field_t *b = &s_builtins[which].fields[i];
        s_field_t *f = &s->f[s->n++];
        snprintf(f->name, sizeof f->name, "%s", b->name);
        f->name_len = strlen(f->name);
        f->kind = b->kind;
        f->required = true;
        f->has_min = b->has_min;
        f->has_max = b->has_max;
        f->imin = b->min;
        f->imax = b->max;
        f->min_len = b->min_len;
        f->max_len = b->max_len;
        f->what = b->what;
        char why[200];
        if (b->pattern && s_compile(f, b->pattern, strlen(b->pattern), why, sizeof why) != 0) {
            snprintf(err, n, "built-in schema %s: field %s: %s", s->name, f->name, why);
            worker_schema_destroy(&s);
            return NULL;
        }
    }
    return s;
}

/* ---- inline schemas ----------------------------------------------------- */

typedef struct {
    farm_str_t name;
    const msgpack_object *fields;
} s_schema_args_t;

static const farm_field_t s_schema_fields[] = {
    {"name", FARM_T_STR, false, 1, WORKER_SCHEMA_NAME_MAX, 0, offsetof(s_schema_args_t, name), NULL},
    {"fields", FARM_T_ARRAY, true, 1, WORKER_SCHEMA_FIELDS_MAX, 0, offsetof(s_schema_args_t, fields), NULL},
};

typedef struct {
    farm_str_t name, type, pattern;
    bool required;
    const msgpack_object *min, *max;
    int64_t min_len, max_len;
} s_field_args_t;

#define S_LEN_MAX (64 * 1024 * 1024)
static const farm_field_t s_field_fields[] = {
    {"name", FARM_T_STR, true, 1, WORKER_SCHEMA_NAME_MAX, 0, offsetof(s_field_args_t, name), NULL},
    {"type", FARM_T_STR, true, 1, 16, 0, offsetof(s_field_args_t, type), NULL},
    {"required", FARM_T_BOOL, false, 0, 0, 0, offsetof(s_field_args_t, required), NULL},
    {"min", FARM_T_ANY, false, 0, 0, 0, offsetof(s_field_args_t, min), NULL},
    {"max", FARM_T_ANY, false, 0, 0, 0, offsetof(s_field_args_t, max), NULL},
    {"min_len", FARM_T_INT, false, 0, S_LEN_MAX, 0, offsetof(s_field_args_t, min_len), NULL},
    {"max_len", FARM_T_INT, false, 0, S_LEN_MAX, -1, offsetof(s_field_args_t, max_len), NULL},
    {"pattern", FARM_T_STR, false, 1, WORKER_SCHEMA_PATTERN_MAX, 0, offsetof(s_field_args_t, pattern), NULL},
};
enum { S_F_NAME, S_F_TYPE, S_F_REQUIRED, S_F_MIN, S_F_MAX, S_F_MIN_LEN, S_F_MAX_LEN, S_F_PATTERN };

/* A bound of an int field: an integer. */
static bool s_int_of(const msgpack_object *o, int64_t *out) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

/* A number (int or finite float) as a double. */
static bool s_num_of(const msgpack_object *o, double *out) {
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return isfinite(o->via.f64);
    default: return false;
    }
}

/* Fill f from the field spec o; path is "args.schema.fields[i]". Returns
 * 0 or -1 with err set. */
static int s_field_parse(const worker_schema_t *s, s_field_t *f, const msgpack_object *o, const char *path,
                         char *err, size_t n) {
    s_field_args_t a;
    uint64_t present = 0;
    farm_error_t e;
    if (farm_msg_decode(s_field_fields, sizeof s_field_fields / sizeof s_field_fields[0], o, &a, &present, path,
                        &e) != 0) {
        snprintf(err, n, "%s", e.message);
        return -1;
    }
    if (memchr(a.name.ptr, '\0', a.name.len)) {
        snprintf(err, n, "%s.name must not contain NUL bytes", path);
        return -1;
    }
    memcpy(f->name, a.name.ptr, a.name.len);
    f->name[a.name.len] = '\0';
    f->name_len = a.name.len;
    char clean[WORKER_SCHEMA_NAME_MAX + 1];
    for (size_t i = 0; &s->f[i] != f; i++) /* the fields before this one */
        if (s->f[i].name_len == f->name_len && memcmp(s->f[i].name, f->name, f->name_len) == 0) {
            snprintf(err, n, "%s.name: field '%s' is declared twice", path,
                     s_clean(clean, sizeof clean, f->name, f->name_len, WORKER_SCHEMA_NAME_MAX));
            return -1;
        }
    size_t k;
    for (k = 0; k < 4; k++)
        if (farm_str_eq(a.type, s_kind_names[k]))
            break;
    if (k == 4) {
        snprintf(err, n, "%s.type must be int, float, str or bool", path);
        return -1;
    }
    f->kind = (s_kind_t)k;
    f->required = a.required;
    bool has_len = present & ((1u << S_F_MIN_LEN) | (1u << S_F_MAX_LEN));
    if (f->kind != S_STR && (has_len || a.pattern.ptr)) {
        snprintf(err, n, "%s: min_len, max_len and pattern apply to str fields only", path);
        return -1;
    }
    if ((f->kind == S_STR || f->kind == S_BOOL) && (a.min || a.max)) {
        snprintf(err, n, "%s: min and max apply to int and float fields only%s", path,
                 f->kind == S_STR ? " (use min_len and max_len for a str)" : "");
        return -1;
    }
    if (f->kind == S_INT) {
        if ((a.min && !s_int_of(a.min, &f->imin)) || (a.max && !s_int_of(a.max, &f->imax))) {
            snprintf(err, n, "%s: min and max of an int field must be integers", path);
            return -1;
        }
        f->has_min = a.min != NULL;
        f->has_max = a.max != NULL;
        if (f->has_min && f->has_max && f->imin > f->imax) {
            snprintf(err, n, "%s: min %" PRId64 " is greater than max %" PRId64, path, f->imin, f->imax);
            return -1;
        }
    } else if (f->kind == S_FLOAT) {
        if ((a.min && !s_num_of(a.min, &f->fmin)) || (a.max && !s_num_of(a.max, &f->fmax))) {
            snprintf(err, n, "%s: min and max of a float field must be finite numbers", path);
            return -1;
        }
        f->has_min = a.min != NULL;
        f->has_max = a.max != NULL;
        if (f->has_min && f->has_max && f->fmin > f->fmax) {
            snprintf(err, n, "%s: min %g is greater than max %g", path, f->fmin, f->fmax);
            return -1;
        }
    } else if (f->kind == S_STR) {
        f->min_len = a.min_len;
        f->max_len = a.max_len;
        if (f->max_len >= 0 && f->min_len > f->max_len) {
            snprintf(err, n, "%s: min_len %" PRId64 " is greater than max_len %" PRId64, path, f->min_len,
                     f->max_len);
            return -1;
        }
        if (a.pattern.ptr) {
            if (memchr(a.pattern.ptr, '\0', a.pattern.len)) {
                snprintf(err, n, "%s.pattern must not contain NUL bytes", path);
                return -1;
            }
            char why[200];
            if (s_compile(f, a.pattern.ptr, a.pattern.len, why, sizeof why) != 0) {
                snprintf(err, n, "%s.%s", path, why);
                return -1;
            }
        }
    }
    return 0;
}

static worker_schema_t *s_inline(const msgpack_object *o, char *err, size_t n) {
    s_schema_args_t a;
    farm_error_t e;
    if (farm_msg_decode(s_schema_fields, sizeof s_schema_fields / sizeof s_schema_fields[0], o, &a, NULL,
                        "args.schema", &e) != 0) {
        snprintf(err, n, "%s", e.message);
        return NULL;
    }
    worker_schema_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (a.name.ptr)
        s_clean(s->name, sizeof s->name, a.name.ptr, a.name.len, WORKER_SCHEMA_NAME_MAX);
    else
        snprintf(s->name, sizeof s->name, "inline");
    for (uint32_t i = 0; i < a.fields->via.array.size; i++) {
        char path[64];
        snprintf(path, sizeof path, "args.schema.fields[%" PRIu32 "]", i);
        /* Count the field first so destroy frees its regex if it has one. */
        s_field_t *f = &s->f[s->n++];
        if (s_field_parse(s, f, &a.fields->via.array.ptr[i], path, err, n) != 0) {
            worker_schema_destroy(&s);
            return NULL;
        }
    }
    return s;
}

/* ---- the schema API ----------------------------------------------------- */

worker_schema_t *worker_schema_from(const msgpack_object *o, char *err, size_t n) {
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        snprintf(err, n, "args.schema is missing: give a schema name (student) or an inline schema");
        return NULL;
    }
    if (o->type == MSGPACK_OBJECT_MAP)
        return s_inline(o, err, n);
    if (o->type != MSGPACK_OBJECT_STR) {
        snprintf(err, n, "args.schema must be a schema name or a map");
        return NULL;
    }
    farm_str_t name = {o->via.str.ptr, o->via.str.size};
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins[0]; i++)
        if (farm_str_eq(name, s_builtins[i].name))
            return s_builtin(i, err, n);
    char clean[WORKER_SCHEMA_NAME_MAX + 1];
    snprintf(err, n, "args.schema: no built-in schema '%s' (known: student)",
             s_clean(clean, sizeof clean, name.ptr, name.len, WORKER_SCHEMA_NAME_MAX));
    return NULL;
}

void worker_schema_destroy(worker_schema_t **p) {
    if (!p || !*p)
        return;
    worker_schema_t *s = *p;
    for (size_t i = 0; i < s->n; i++)
        if (s->f[i].has_re)
            regfree(&s->f[i].re);
    free(s);
    *p = NULL;
}

const char *worker_schema_name(const worker_schema_t *s) { return s->name; }

static const char *s_obj_kind(const msgpack_object *v) {
    switch (v->type) {
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "another type";
    }
}

/* Check value v of field f. Returns true, or false with reason set. */
static bool s_value_check(const s_field_t *f, const msgpack_object *v, char *reason, size_t n) {
    switch (f->kind) {
    case S_INT: {
        int64_t x;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > (uint64_t)INT64_MAX) {
            snprintf(reason, n, "%s is out of the integer range", f->name);
            return false;
        }
        if (!s_int_of(v, &x)) {
            snprintf(reason, n, "%s must be an integer, not %s", f->name, s_obj_kind(v));
            return false;
        }
        if (f->has_min && x < f->imin) {
            snprintf(reason, n, "%s is %" PRId64 ", below the minimum %" PRId64, f->name, x, f->imin);
            return false;
        }
        if (f->has_max && x > f->imax) {
            snprintf(reason, n, "%s is %" PRId64 ", above the maximum %" PRId64, f->name, x, f->imax);
            return false;
        }
        return true;
    }
    case S_FLOAT: {
        double x;
        if (!s_num_of(v, &x)) {
            snprintf(reason, n, "%s must be a finite number, not %s", f->name,
                     v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64 ? "infinite or NaN"
                                                                                            : s_obj_kind(v));
            return false;
        }
        if (f->has_min && x < f->fmin) {
            snprintf(reason, n, "%s is %g, below the minimum %g", f->name, x, f->fmin);
            return false;
        }
        if (f->has_max && x > f->fmax) {
            snprintf(reason, n, "%s is %g, above the maximum %g", f->name, x, f->fmax);
            return false;
        }
        return true;
    }
    case S_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN) {
            snprintf(reason, n, "%s must be a boolean, not %s", f->name, s_obj_kind(v));
            return false;
        }
        return true;
    case S_STR: break;
    }
    if (v->type != MSGPACK_OBJECT_STR) {
        snprintf(reason, n, "%s must be a string, not %s", f->name, s_obj_kind(v));
        return false;
    }
    int64_t chars = worker_utf8_count(v->via.str.ptr, v->via.str.size);
    if (chars < 0) {
        snprintf(reason, n, "%s must be valid UTF-8 text without NUL bytes", f->name);
        return false;
    }
    if (chars < f->min_len) {
        snprintf(reason, n, "%s has %" PRId64 " characters, fewer than %" PRId64, f->name, chars, f->min_len);
        return false;
    }
    if (f->max_len >= 0 && chars > f->max_len) {
        snprintf(reason, n, "%s has %" PRId64 " characters, more than %" PRId64, f->name, chars, f->max_len);
        return false;
    }
    if (!f->has_re)
        return true;
    char *z = malloc((size_t)v->via.str.size + 1);
    if (!z) {
        snprintf(reason, n, "%s: worker out of memory", f->name);
        return false;
    }
    memcpy(z, v->via.str.ptr, v->via.str.size);
    z[v->via.str.size] = '\0';
    int rc = regexec(&f->re, z, 0, NULL, 0);
    free(z);
    if (rc == 0)
        return true;
    if (f->what)
        snprintf(reason, n, "%s must be %s", f->name, f->what);
    else {
        char pat[80];
        snprintf(reason, n, "%s does not match the pattern %s", f->name,
                 s_clean(pat, sizeof pat, f->pattern, strlen(f->pattern), 64));
    }
    return false;
}

bool worker_schema_check(const worker_schema_t *s, const msgpack_object *rec, char *reason, size_t n) {
    if (rec->type != MSGPACK_OBJECT_MAP) {
        snprintf(reason, n, "record must be a map, not %s", s_obj_kind(rec));
        return false;
    }
    const msgpack_object *vals[WORKER_SCHEMA_FIELDS_MAX] = {0};
    bool seen[WORKER_SCHEMA_FIELDS_MAX] = {0};
    char clean[WORKER_SCHEMA_NAME_MAX + 1];
    /* Keys: each names a field, once. Stops at the first bad one. */
    for (uint32_t k = 0; k < rec->via.map.size; k++) {
        const msgpack_object *key = &rec->via.map.ptr[k].key;
        if (key->type != MSGPACK_OBJECT_STR) {
            snprintf(reason, n, "record has a key that is not a string");
            return false;
        }
        size_t i;
        for (i = 0; i < s->n; i++)
            if (s->f[i].name_len == key->via.str.size && memcmp(s->f[i].name, key->via.str.ptr, key->via.str.size) == 0)
                break;
        if (i == s->n) {
            snprintf(reason, n, "unknown field '%s'",
                     s_clean(clean, sizeof clean, key->via.str.ptr, key->via.str.size, WORKER_SCHEMA_NAME_MAX));
            return false;
        }
        if (seen[i]) {
            snprintf(reason, n, "field '%s' appears twice", s->f[i].name);
            return false;
        }
        seen[i] = true;
        const msgpack_object *v = &rec->via.map.ptr[k].val;
        vals[i] = v->type == MSGPACK_OBJECT_NIL ? NULL : v;
    }
    /* Values, in schema order. */
    for (size_t i = 0; i < s->n; i++) {
        if (!vals[i]) {
            if (s->f[i].required) {
                snprintf(reason, n, "missing required field '%s'", s->f[i].name);
                return false;
            }
            continue;
        }
        if (!s_value_check(&s->f[i], vals[i], reason, n))
            return false;
    }
    return true;
}

/* ---- the handler -------------------------------------------------------- */

typedef struct {
    const msgpack_object *schema; /* name or map, required */
    const msgpack_object *records; /* array, required */
} s_ingest_args_t;

static const farm_field_t s_ingest_fields[] = {
    {"schema", FARM_T_ANY, true, 0, 0, 0, offsetof(s_ingest_args_t, schema), NULL},
    {"records", FARM_T_ARRAY, true, 0, FARM_INGEST_MAX_RECORDS, 0, offsetof(s_ingest_args_t, records),
     "max_records"},
};

typedef struct {
    int64_t index;                          /* the record's index in args.records */
    char reason[WORKER_INGEST_REASON_MAX];  /* why it was rejected */
} s_rejection_t;

/* Wait ms or until the task is stopped, whichever comes first. */
static void s_pause(farm_task_ctx_t *ctx, int64_t ms) {
    int64_t until = farm_mono_ms() + ms;
    int64_t deadline = farm_task_deadline_ms(ctx);
    if (deadline > 0 && deadline < until)
        until = deadline;
    struct pollfd pfd = {.fd = farm_task_stop_fd(ctx), .events = POLLIN};
    for (;;) {
        int64_t left = until - farm_mono_ms();
        if (left <= 0 || farm_task_stopping(ctx))
            return;
        int rc = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (rc > 0 || (rc < 0 && errno != EINTR))
            return; /* stopped, or poll cannot wait: the pause is only a simulation */
    }
}

int worker_ingest_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    const worker_ingest_cfg_t *cfg = farm_task_handler_data(ctx);
    int64_t pause_ms = cfg ? cfg->pause_ms : 0;
    s_ingest_args_t a;
    farm_error_t e;
    if (args->type == MSGPACK_OBJECT_NIL) {
        farm_task_fail(ctx, "ingest: args must be a map with schema and records");
        return -1;
    }
    if (farm_msg_decode(s_ingest_fields, sizeof s_ingest_fields / sizeof s_ingest_fields[0], args, &a, NULL, "args",
                        &e) != 0) {
        farm_task_fail(ctx, "ingest: %s", e.message);
        return -1;
    }
    char err[512];
    worker_schema_t *schema = worker_schema_from(a.schema, err, sizeof err);
    if (!schema) {
        farm_task_fail(ctx, "ingest: %s", err);
        return -1;
    }
    uint32_t total = a.records->via.array.size;
    s_rejection_t *rej = total ? calloc(total, sizeof *rej) : NULL;
    if (total && !rej) {
        worker_schema_destroy(&schema);
        farm_task_fail(ctx, "ingest: worker out of memory");
        return -1;
    }
    size_t nrej = 0;
    int64_t accepted = 0;
    int rc = 0;
    for (uint32_t i = 0; i < total; i++) {
        if (farm_task_stopping(ctx)) {
            farm_task_fail(ctx, "ingest: stopped after %" PRIu32 " of %" PRIu32 " records", i, total);
            rc = -1;
            break;
        }
        const msgpack_object *rec = &a.records->via.array.ptr[i];
        if (worker_schema_check(schema, rec, rej[nrej].reason, sizeof rej[nrej].reason)) {
            if (farm_task_record(ctx, i, rec) != 0) {
                farm_task_fail(ctx, "ingest: cannot keep record %" PRIu32 ": the records pass the size limit", i);
                rc = -1;
                break;
            }
            accepted++;
        } else {
            rej[nrej++].index = i;
        }
        uint32_t done = i + 1;
        if (done % WORKER_INGEST_BATCH == 0 || done == total) {
            char msg[64];
            snprintf(msg, sizeof msg, "validated %" PRIu32 "/%" PRIu32, done, total);
            farm_task_progress(ctx, (int)((uint64_t)done * 100 / total), msg);
            /* The simulated external call after every full batch. */
            if (done % WORKER_INGEST_BATCH == 0 && pause_ms > 0)
                s_pause(ctx, pause_ms);
        }
    }
    if (rc == 0) {
        if (total == 0)
            farm_task_progress(ctx, 100, "validated 0/0");
        msgpack_pack_map(result, 5);
        farm_pack_kv_str(result, "schema", worker_schema_name(schema));
        farm_pack_kv_int(result, "total", total);
        farm_pack_kv_int(result, "accepted", accepted);
        farm_pack_kv_int(result, "rejected", (int64_t)nrej);
        farm_pack_str(result, "rejections");
        msgpack_pack_array(result, nrej);
        for (size_t k = 0; k < nrej; k++) {
            msgpack_pack_map(result, 2);
            farm_pack_kv_int(result, "index", rej[k].index);
            farm_pack_kv_str(result, "reason", rej[k].reason);
        }
    }
    free(rej);
    worker_schema_destroy(&schema);
    return rc;
}
