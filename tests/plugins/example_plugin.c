/* example_plugin: a complete farm-worker plugin, and the one the tests load.
 *
 * It offers one type, "example.reverse": args {"text": str} (at most
 * 1 MiB), result {"reversed": the text with its bytes in reverse order,
 * "length": bytes}. It shows everything a plugin does: it checks its args
 * as untrusted input, reports progress, stops when asked, says why it
 * failed, and exports the two entry points of farm_plugin.h. Build it
 * outside the farm's tree with
 *
 *     cc -shared -fPIC -o example.so example_plugin.c $(pkg-config --cflags farm-plugin)
 *
 * and run it with farm-worker --plugin ./example.so.
 */
#include "farm_plugin.h"

#include <stdlib.h>
#include <string.h>

#define EXAMPLE_TEXT_MAX (1024 * 1024)

/* The value of key in map o, or NULL. */
static const msgpack_object *example_get(const msgpack_object *o, const char *key) {
    size_t n = strlen(key);
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

static int example_reverse(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    const msgpack_object *text = example_get(args, "text");
    if (!text || text->type != MSGPACK_OBJECT_STR) {
        farm_task_fail(ctx, "example.reverse: args.text must be a string");
        return -1;
    }
    uint32_t n = text->via.str.size;
    if (n > EXAMPLE_TEXT_MAX) {
        farm_task_fail(ctx, "example.reverse: args.text is %u bytes, over the limit %d", n, EXAMPLE_TEXT_MAX);
        return -1;
    }
    char *out = malloc(n ? n : 1);
    if (!out) {
        farm_task_fail(ctx, "example.reverse: out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((i & 0xFFFF) == 0) {
            if (farm_task_stopping(ctx)) { /* cancelled or timed out: return soon */
                free(out);
                return -1;
            }
            farm_task_progress(ctx, (int)((uint64_t)i * 100 / n), "reversing");
        }
        out[i] = text->via.str.ptr[n - 1 - i];
    }
    msgpack_pack_map(result, 2);
    msgpack_pack_str(result, 8);
    msgpack_pack_str_body(result, "reversed", 8);
    msgpack_pack_str(result, n);
    msgpack_pack_str_body(result, out, n);
    msgpack_pack_str(result, 6);
    msgpack_pack_str_body(result, "length", 6);
    msgpack_pack_uint32(result, n);
    free(out);
    farm_task_progress(ctx, 100, "done");
    return 0;
}

static const farm_handler_t example_handlers[] = {
    {"example.reverse", example_reverse, NULL},
};

int farm_plugin_api_version(void) { return FARM_PLUGIN_API_VERSION; }

const farm_handler_t *farm_plugin_handlers(size_t *n) {
    *n = sizeof example_handlers / sizeof example_handlers[0];
    return example_handlers;
}
