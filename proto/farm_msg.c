/* farm_msg: table-driven MessagePack decoding and packing helpers
 * (see farm_msg.h). The decoder never trusts the wire: every type, range
 * and length is checked before a value is used, and every error names
 * its field. */
#include "farm_msg.h"
#include "farm_err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int farm_error_set(farm_error_t *e, int code, const char *field, const char *fmt, ...) {
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

bool farm_str_eq(farm_str_t s, const char *c) {
    size_t n = strlen(c);
    return s.ptr && s.len == n && memcmp(s.ptr, c, n) == 0;
}

char *farm_str_copy(char *dst, size_t n, farm_str_t s) {
    size_t len = s.len < n - 1 ? s.len : n - 1;
    if (s.ptr && len)
        memcpy(dst, s.ptr, len);
    dst[s.ptr ? len : 0] = '\0';
    return dst;
}

static const char *s_type_name(farm_type_t t) {
    switch (t) {
    case FARM_T_INT: return "an integer";
    case FARM_T_BOOL: return "a boolean";
    case FARM_T_STR: return "a string";
    case FARM_T_BIN: return "binary";
    case FARM_T_ARRAY: return "an array";
    case FARM_T_MAP: return "a map";
    case FARM_T_ANY: return "a value";
    }
    return "a value";
}

/* Walk the encoded bytes without allocating: every length and element
 * count must fit in the bytes that remain (each element takes at least one
 * byte), and nesting must stay within what msgpack-c unpacks. msgpack-c
 * allocates a container's declared size before reading it, so without this
 * five bytes could ask for gigabytes. The value starts at p[0]; *used gets
its length. Returns 0 or an error code with e set. */
#define FARM_MSG_MAX_DEPTH 32
static int s_prescan(const unsigned char *p, size_t len, size_t *used, farm_error_t *e) {
    uint64_t left[FARM_MSG_MAX_DEPTH + 1]; /* items still to read per level */
    int depth = 0;
    size_t i = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (i >= len)
            return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack: truncated");
        unsigned char c = p[i++];
        uint64_t n = 0, skip = 0, items = 0;
        size_t w = 0; /* bytes of a big-endian length that follows */
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
            continue;
        if (c >= 0x80 && c <= 0x8f)
            items = (uint64_t)(c & 0x0f) * 2;
        else if (c >= 0x90 && c <= 0x9f)
            items = c & 0x0f;
        else if (c >= 0xa0 && c <= 0xbf)
            skip = c & 0x1f;
        else
            switch (c) {
            case 0xc4: case 0xd9: w = 1; break;           /* bin8, str8 */
            case 0xc5: case 0xda: w = 2; break;           /* bin16, str16 */
            case 0xc6: case 0xdb: w = 4; break;           /* bin32, str32 */
            case 0xc7: w = 1; skip = 1; break;            /* ext8: + type byte */
            case 0xc8: w = 2; skip = 1; break;
            case 0xc9: w = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: w = 2; break;           /* array16, map16 */
            case 0xdd: case 0xdf: w = 4; break;           /* array32, map32 */
            default: return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack: byte 0x%02x at %zu", c, i - 1);
            }
        if (w) {
            if (len - i < w)
                return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack: truncated");
            for (size_t k = 0; k < w; k++)
                n = n << 8 | p[i++];
            if (c == 0xdc || c == 0xdd)
                items = n;
            else if (c == 0xde || c == 0xdf)
                items = n * 2;
            else
                skip += n;
        }
        if (skip) {
            if (len - i < skip)
                return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack: a value runs past the end");
            i += skip;
        } else if (items) {
            if (items > len - i)
                return farm_error_set(e, FARM_EBADREQ, NULL,
                                      "not MessagePack: a container declares %llu entries in %zu bytes",
                                      (unsigned long long)items, len - i);
            if (depth == FARM_MSG_MAX_DEPTH)
                return farm_error_set(e, FARM_EBADREQ, NULL, "nested deeper than %d levels", FARM_MSG_MAX_DEPTH);
            left[++depth] = items;
        }
    }
    *used = i;
    return 0;
}

int farm_msg_unpack_next(const void *buf, size_t len, size_t *off, msgpack_zone *z, msgpack_object *obj,
                         farm_error_t *e) {
    if (*off >= len)
        return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack: truncated");
    const char *p = (const char *)buf + *off;
    size_t n, used = 0;
    int rc = s_prescan((const unsigned char *)p, len - *off, &n, e);
    if (rc)
        return rc;
    msgpack_unpack_return r = msgpack_unpack(p, n, &used, z, obj);
    if (r == MSGPACK_UNPACK_SUCCESS && used == n) {
        *off += n;
        return 0;
    }
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return farm_error_set(e, FARM_EINTERNAL, NULL, "out of memory decoding the message");
    return farm_error_set(e, FARM_EBADREQ, NULL, "not MessagePack");
}

int farm_msg_unpack(const void *buf, size_t len, msgpack_zone *z, msgpack_object *obj, farm_error_t *e) {
    size_t off = 0;
    int rc = farm_msg_unpack_next(buf, len, &off, z, obj, e);
    if (rc == 0 && off != len)
        return farm_error_set(e, FARM_EBADREQ, NULL, "trailing bytes after the MessagePack value");
    return rc;
}

const msgpack_object *farm_msg_get(const msgpack_object *o, const char *key) {
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

/* The name of a field for errors: "prefix.name", or name alone (no copy:
 * this runs for every field of every message). */
static const char *s_path(char *dst, size_t n, const char *prefix, const char *name) {
    if (!prefix || !*prefix)
        return name;
    snprintf(dst, n, "%s.%s", prefix, name);
    return dst;
}

/* Length of a sized value, or -1 when o is not of the expected kind. */
static int64_t s_len(const msgpack_object *o, farm_type_t t) {
    switch (t) {
    case FARM_T_STR:
        return o->type == MSGPACK_OBJECT_STR ? (int64_t)o->via.str.size : -1;
    case FARM_T_BIN:
        if (o->type == MSGPACK_OBJECT_BIN)
            return (int64_t)o->via.bin.size;
        return o->type == MSGPACK_OBJECT_STR ? (int64_t)o->via.str.size : -1;
    case FARM_T_ARRAY:
        return o->type == MSGPACK_OBJECT_ARRAY ? (int64_t)o->via.array.size : -1;
    case FARM_T_MAP:
        return o->type == MSGPACK_OBJECT_MAP ? (int64_t)o->via.map.size : -1;
    default:
        return -1;
    }
}

/* Fail field f of a message: the error names it "prefix.name" (made only
 * now: a field that decodes costs no formatting) and says what is wrong
 * (fmt, printf style, after the name). Returns code. */
static int s_ferr(farm_error_t *e, int code, const char *prefix, const farm_field_t *f, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int s_ferr(farm_error_t *e, int code, const char *prefix, const farm_field_t *f, const char *fmt, ...) {
    char buf[128], what[256];
    const char *name = s_path(buf, sizeof buf, prefix, f->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return farm_error_set(e, code, name, "%s %s", name, what);
}

/* Decode field f from v into out. */
static int s_field(const farm_field_t *f, const msgpack_object *v, void *out, const char *prefix, farm_error_t *e) {
    char *dst = (char *)out + f->off;
    switch (f->type) {
    case FARM_T_INT: {
        int64_t x;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (v->via.u64 > (uint64_t)INT64_MAX)
                return s_ferr(e, FARM_EBADREQ, prefix, f, "is out of range (%" PRId64 "..%" PRId64 ")", f->min,
                              f->max);
            x = (int64_t)v->via.u64;
        } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            x = v->via.i64;
        } else {
            return s_ferr(e, FARM_EBADREQ, prefix, f, "must be an integer");
        }
        if (x < f->min || x > f->max)
            return s_ferr(e, FARM_EBADREQ, prefix, f, "is out of range (%" PRId64 "..%" PRId64 ")", f->min, f->max);
        memcpy(dst, &x, sizeof x);
        return 0;
    }
    case FARM_T_BOOL: {
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return s_ferr(e, FARM_EBADREQ, prefix, f, "must be a boolean");
        bool b = v->via.boolean;
        memcpy(dst, &b, sizeof b);
        return 0;
    }
    case FARM_T_ANY: {
        const msgpack_object *p = v;
        memcpy(dst, &p, sizeof p);
        return 0;
    }
    default:
        break;
    }
    int64_t len = s_len(v, f->type);
    if (len < 0)
        return s_ferr(e, FARM_EBADREQ, prefix, f, "must be %s", s_type_name(f->type));
    if (f->max > 0 && len > f->max) {
        if (f->limit)
            return s_ferr(e, FARM_ETOOLARGE, prefix, f, "has %" PRId64 " %s, over the limit %s=%" PRId64, len,
                          f->type == FARM_T_STR || f->type == FARM_T_BIN ? "bytes" : "entries", f->limit, f->max);
        return s_ferr(e, FARM_EBADREQ, prefix, f, "is too long (at most %" PRId64 ")", f->max);
    }
    if (len < f->min)
        return s_ferr(e, FARM_EBADREQ, prefix, f, "is too short (at least %" PRId64 ")", f->min);
    if (f->type == FARM_T_STR || f->type == FARM_T_BIN) {
        farm_str_t s = {v->type == MSGPACK_OBJECT_BIN ? v->via.bin.ptr : v->via.str.ptr, (uint32_t)len};
        if (!s.ptr)
            s.ptr = "";
        memcpy(dst, &s, sizeof s);
    } else {
        const msgpack_object *p = v;
        memcpy(dst, &p, sizeof p);
    }
    return 0;
}

int farm_msg_decode(const farm_field_t *fields, size_t n, const msgpack_object *o, void *out,
                    uint64_t *present, const char *prefix, farm_error_t *e) {
    char buf[128];
    const char *path;
    uint64_t seen = 0, met = 0; /* met: keys found, nil or not; seen: non-nil */
    if (o->type != MSGPACK_OBJECT_MAP)
        return farm_error_set(e, FARM_EBADREQ, prefix && *prefix ? prefix : NULL, "%s must be a map",
                              prefix && *prefix ? prefix : "the message");
    /* Defaults first, so absent fields read as their defaults. */
    for (size_t i = 0; i < n; i++) {
        char *dst = (char *)out + fields[i].off;
        switch (fields[i].type) {
        case FARM_T_INT: memcpy(dst, &fields[i].def, sizeof(int64_t)); break;
        case FARM_T_BOOL: { bool b = fields[i].def != 0; memcpy(dst, &b, sizeof b); break; }
        case FARM_T_STR:
        case FARM_T_BIN: { farm_str_t s = {NULL, 0}; memcpy(dst, &s, sizeof s); break; }
        default: { const msgpack_object *p = NULL; memcpy(dst, &p, sizeof p); break; }
        }
    }
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        const msgpack_object *key = &o->via.map.ptr[k].key;
        const msgpack_object *val = &o->via.map.ptr[k].val;
        if (key->type != MSGPACK_OBJECT_STR)
            return farm_error_set(e, FARM_EBADREQ, prefix, "%s has a key that is not a string",
                                  prefix && *prefix ? prefix : "the message");
        for (size_t i = 0; i < n && i < 64; i++) {
            size_t nl = strlen(fields[i].name);
            if (key->via.str.size != nl || memcmp(key->via.str.ptr, fields[i].name, nl) != 0)
                continue;
            if (met & (1ull << i)) {
                path = s_path(buf, sizeof buf, prefix, fields[i].name);
                return farm_error_set(e, FARM_EBADREQ, path, "%s appears twice", path);
            }
            met |= 1ull << i;
            if (val->type == MSGPACK_OBJECT_NIL)
                break; /* nil is absent */
            int rc = s_field(&fields[i], val, out, prefix, e);
            if (rc)
                return rc;
            seen |= 1ull << i;
            break;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (fields[i].required && !(seen & (1ull << i))) {
            path = s_path(buf, sizeof buf, prefix, fields[i].name);
            return farm_error_set(e, FARM_EBADREQ, path, "%s is missing", path);
        }
    if (present)
        *present = seen;
    return 0;
}

/* --- packing ---------------------------------------------------------- */

void farm_pack_strn(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void farm_pack_str(msgpack_packer *pk, const char *s) {
    if (s)
        farm_pack_strn(pk, s, strlen(s));
    else
        msgpack_pack_nil(pk);
}

void farm_pack_kv_str(msgpack_packer *pk, const char *k, const char *v) {
    farm_pack_str(pk, k);
    farm_pack_str(pk, v);
}

void farm_pack_kv_strn(msgpack_packer *pk, const char *k, const char *v, size_t n) {
    farm_pack_str(pk, k);
    if (v)
        farm_pack_strn(pk, v, n);
    else
        msgpack_pack_nil(pk);
}

void farm_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
    farm_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void farm_pack_kv_bool(msgpack_packer *pk, const char *k, bool v) {
    farm_pack_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void farm_pack_kv_nil(msgpack_packer *pk, const char *k) {
    farm_pack_str(pk, k);
    msgpack_pack_nil(pk);
}

void farm_pack_kv_double(msgpack_packer *pk, const char *k, double v) {
    farm_pack_str(pk, k);
    msgpack_pack_double(pk, v);
}

void farm_pack_kv_bin(msgpack_packer *pk, const char *k, const void *v, size_t n) {
    farm_pack_str(pk, k);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, v, n);
}

void farm_pack_raw(msgpack_packer *pk, const void *raw, size_t n) {
    if (!raw || n == 0) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_sbuffer_write(pk->data, (const char *)raw, n);
}

void farm_pack_error(msgpack_packer *pk, const farm_error_t *e) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_bool(pk, "ok", false);
    farm_pack_str(pk, "error");
    msgpack_pack_map(pk, e->field[0] ? 3 : 2);
    farm_pack_kv_str(pk, "code", farm_err_name(e->code));
    farm_pack_kv_str(pk, "message", e->message[0] ? e->message : farm_strerror(e->code));
    if (e->field[0])
        farm_pack_kv_str(pk, "field", e->field);
}
