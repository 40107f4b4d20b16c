/* bad_plugin: plugins that must be refused or must fail, for the tests.
 * One source, built three times:
 *
 *   BAD_NO_ENTRY   exports neither entry point: refused at load.
 *   BAD_VERSION    claims API version FARM_PLUGIN_API_VERSION + 41: refused.
 *   BAD_MISBEHAVE  loads fine and offers types that misbehave at run time:
 *                    bad.garbage  writes bytes that are not MessagePack
 *                    bad.two      packs two values instead of one
 *                    bad.fail     fails without saying why
 *                    bad.crash    aborts, taking its worker down (core
 *                                 dumps off first, so tests leave none)
 */
#include "farm_plugin.h"

#include <stdlib.h>
#include <sys/prctl.h>

#if defined(BAD_NO_ENTRY)

int not_a_farm_plugin(void);
int not_a_farm_plugin(void) { return 1; }

#else

static int bad_noop(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    return msgpack_pack_nil(result);
}

#if defined(BAD_MISBEHAVE)
static int bad_garbage(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    /* 0xc1 is never used in MessagePack. */
    return msgpack_sbuffer_write(result->data, "\xc1\xc1\xc1", 3);
}

static int bad_two(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    msgpack_pack_int(result, 1);
    msgpack_pack_int(result, 2);
    return 0;
}

static int bad_fail(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    (void)result;
    return 7;
}

static int bad_crash(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    (void)result;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    abort();
}
#endif

static const farm_handler_t bad_handlers[] = {
#if defined(BAD_MISBEHAVE)
    {"bad.garbage", bad_garbage, NULL},
    {"bad.two", bad_two, NULL},
    {"bad.fail", bad_fail, NULL},
    {"bad.crash", bad_crash, NULL},
#endif
    {"bad.noop", bad_noop, NULL},
};

int farm_plugin_api_version(void) {
#if defined(BAD_VERSION)
    return FARM_PLUGIN_API_VERSION + 41;
#else
    return FARM_PLUGIN_API_VERSION;
#endif
}

const farm_handler_t *farm_plugin_handlers(size_t *n) {
    *n = sizeof bad_handlers / sizeof bad_handlers[0];
    return bad_handlers;
}

#endif
