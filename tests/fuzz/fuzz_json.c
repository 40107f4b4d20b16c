/* libFuzzer target: farm_json_to_msgpack, the reader of what people type
 * (`farm submit --args`, the test harness, scripts).
 *
 * Any input either fails with a message and no output, or yields exactly
 * one MessagePack value that the farm's own unpacker accepts (when it is
 * not nested deeper than the unpacker allows). That value is then written
 * back as JSON with farm_json_write, and the JSON written must read again
 * to the same value: the writer and reader agree, except where the writer
 * is documented lossy (bin, NaN/Inf, invalid UTF-8, ext: not produced by
 * the reader; doubles: compared after one round).
 */
#include "farm_err.h"
#include "farm_json.h"
#include "farm_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when o holds a double (NaN/Inf turn into null, not equal on the way back). */
static int s_has_float(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return 1;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_has_float(&o->via.array.ptr[i]))
                return 1;
        return 0;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (s_has_float(&o->via.map.ptr[i].val))
                return 1;
        return 0;
    default: return 0;
    }
}

static int s_to_msgpack(const char *text, size_t len, msgpack_sbuffer *b) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    char err[256];
    int rc = farm_json_to_msgpack(text, len, &pk, err, sizeof err);
    if (rc && !err[0])
        __builtin_trap(); /* an error always says why */
    if (!rc && err[0])
        __builtin_trap();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = s_to_msgpack((const char *)data, size, &b);
    if (rc) {
        if (rc != FARM_EBADREQ && rc != FARM_ETOOLARGE)
            __builtin_trap();
        msgpack_sbuffer_destroy(&b);
        return 0;
    }
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
    if (!msgpack_zone_init(&z, 4096)) {
        msgpack_sbuffer_destroy(&b);
        return 0;
    }
    if (farm_msg_unpack(b.data, b.size, &z, &o, &e) == 0) {
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        if (f) {
            int wrc = farm_json_write(f, &o, s_has_float(&o) ? 0 : (int)(size % 3));
            if (fclose(f) != 0 || wrc != 0)
                __builtin_trap();
            msgpack_sbuffer b2;
            msgpack_sbuffer_init(&b2);
            if (s_to_msgpack(text, tlen, &b2) != 0)
                __builtin_trap(); /* what we write, we read */
            msgpack_zone z2;
            msgpack_object o2;
            if (msgpack_zone_init(&z2, 4096)) {
                if (farm_msg_unpack(b2.data, b2.size, &z2, &o2, &e) != 0)
                    __builtin_trap();
                if (!s_has_float(&o) && !msgpack_object_equal(o, o2))
                    __builtin_trap();
                msgpack_zone_destroy(&z2);
            }
            msgpack_sbuffer_destroy(&b2);
            free(text);
        }
    } else if (e.code != FARM_EBADREQ) {
        __builtin_trap();
    }
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    return 0;
}
