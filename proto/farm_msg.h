/* farm_msg: the generic MessagePack codec under every farm message.
 *
 * Every message of the farm, outside and inside, is one MessagePack map
 * with string keys. A message kind is declared once as a table of fields
 * (name, type, required, bounds, default, offset into a C struct); one
 * validating decoder walks any map against any table and fills the struct,
 * and the error it returns names the field to blame and, for sizes, the
 * configured limit. Unknown keys are ignored (forward compatibility), nil
 * counts as absent, and nothing is allocated: strings and nested objects
 * are borrowed from the msgpack zone the caller owns.
 *
 * Packing goes through small helpers so replies read like their spec.
 */
#ifndef FARM_MSG_H
#define FARM_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed string or byte run; not NUL terminated. ptr NULL when absent. */
typedef struct {
    const char *ptr;
    uint32_t len;
} farm_str_t;

typedef enum {
    FARM_T_INT,   /* int64_t; min..max inclusive */
    FARM_T_BOOL,  /* bool */
    FARM_T_STR,   /* farm_str_t; length min..max bytes (max 0: no bound) */
    FARM_T_BIN,   /* farm_str_t; str accepted too */
    FARM_T_ARRAY, /* const msgpack_object *; length min..max */
    FARM_T_MAP,   /* const msgpack_object *; length min..max */
    FARM_T_ANY,   /* const msgpack_object *; anything, nil = absent */
} farm_type_t;

typedef struct {
    const char *name;  /* key in the map */
    farm_type_t type;  /* wire type expected */
    bool required;     /* missing (or nil) is a bad_request */
    int64_t min, max;  /* value bounds for INT, length bounds otherwise */
    int64_t def;       /* default of an INT or BOOL when absent */
    size_t off;        /* offset of the member in the destination struct */
    const char *limit; /* a length over max is too_large naming this limit;
                          NULL: over max is a plain bad_request */
} farm_field_t;

/* What went wrong, for an error reply. code is a FARM_E* code. */
typedef struct {
    int code;
    char field[128];
    char message[256];
} farm_error_t;

/* Fill `e` and return e->code. field may be NULL. */
int farm_error_set(farm_error_t *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Decode map `o` against the `n` fields of `fields` into `out`.
 * prefix (may be NULL or "") is put before field names in errors, e.g.
 * "tasks[3]". Sets bit i of *present (when present is non-NULL) for each
 * field i found non-nil. Returns 0 or FARM_EBADREQ / FARM_ETOOLARGE with e
 * filled; on error `out` may be partly written. Borrowed pointers in out
 * live as long as the zone of `o`. */
int farm_msg_decode(const farm_field_t *fields, size_t n, const msgpack_object *o, void *out,
                    uint64_t *present, const char *prefix, farm_error_t *e);

/* Unpack exactly one object from buf[0..len) into *obj, using zone z
 * (caller-initialised, caller destroys). Trailing bytes are an error.
 * Returns 0 or FARM_EBADREQ with e filled. */
int farm_msg_unpack(const void *buf, size_t len, msgpack_zone *z, msgpack_object *obj, farm_error_t *e);

/* The value of key in map o, or NULL. */
/* Unpack the one object that starts at buf[*off] (buf holds len bytes, one
 * object after another: a frame of the internal sockets may carry several
 * messages) and move *off past it. Returns 0 or an error with e filled;
 * after an error the rest of buf cannot be framed and is to be dropped. */
int farm_msg_unpack_next(const void *buf, size_t len, size_t *off, msgpack_zone *z, msgpack_object *obj,
                         farm_error_t *e);

const msgpack_object *farm_msg_get(const msgpack_object *o, const char *key);

/* True when s equals the C string c. */
bool farm_str_eq(farm_str_t s, const char *c);

/* Copy s into dst (size n, always NUL terminated, cut at n-1). Returns dst. */
char *farm_str_copy(char *dst, size_t n, farm_str_t s);

/* --- packing ---------------------------------------------------------- */
void farm_pack_str(msgpack_packer *pk, const char *s); /* NULL packs nil */
void farm_pack_strn(msgpack_packer *pk, const char *s, size_t n);
void farm_pack_kv_str(msgpack_packer *pk, const char *k, const char *v); /* v NULL: nil */
void farm_pack_kv_strn(msgpack_packer *pk, const char *k, const char *v, size_t n);
void farm_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void farm_pack_kv_bool(msgpack_packer *pk, const char *k, bool v);
void farm_pack_kv_nil(msgpack_packer *pk, const char *k);
void farm_pack_kv_double(msgpack_packer *pk, const char *k, double v);
void farm_pack_kv_bin(msgpack_packer *pk, const char *k, const void *v, size_t n);
/* Append already encoded MessagePack bytes as one value (raw == NULL packs nil).
 * The packer must write to a msgpack_sbuffer. */
void farm_pack_raw(msgpack_packer *pk, const void *raw, size_t n);

/* {"ok": false, "error": {"code", "message", "field"?}} */
void farm_pack_error(msgpack_packer *pk, const farm_error_t *e);

#endif
