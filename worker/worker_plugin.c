/* worker_plugin: dlopen, two dlsym and a checked registration (see
 * worker_plugin.h).
 *
 * Everything a plugin hands over is checked before any of it is
 * registered: the handler count against the room left in the registry, and
 * every type name for validity and uniqueness (against the registry and
 * within the plugin), so a refused plugin leaves the registry as it was.
 * The handle is deliberately leaked on success: handlers point into it.
 */
#include "worker_plugin.h"

#include "farm_err.h"
#include "farm_proto.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* A printable copy of an untrusted type name, for messages. */
static const char *s_show(char *dst, size_t n, const char *s) {
    size_t k = 0;
    for (size_t i = 0; s && s[i] && i < FARM_TYPE_MAX && k + 1 < n; i++)
        dst[k++] = s[i] >= 0x20 && s[i] < 0x7F ? s[i] : '?';
    dst[k] = '\0';
    return dst;
}

int worker_plugin_load(worker_registry_t *reg, const char *path, char *err, size_t n) {
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, n, "cannot load: %s", why ? why : "dlopen failed");
        return -1;
    }
    /* POSIX: a function pointer read from dlsym goes through a void *. */
    void *vsym = dlsym(h, FARM_PLUGIN_VERSION_SYMBOL);
    void *hsym = dlsym(h, FARM_PLUGIN_HANDLERS_SYMBOL);
    if (!vsym || !hsym) {
        snprintf(err, n, "not a farm plugin: no entry point %s (a plugin exports %s and %s, see farm_plugin.h)",
                 !vsym ? FARM_PLUGIN_VERSION_SYMBOL : FARM_PLUGIN_HANDLERS_SYMBOL, FARM_PLUGIN_VERSION_SYMBOL,
                 FARM_PLUGIN_HANDLERS_SYMBOL);
        dlclose(h);
        return -1;
    }
    farm_plugin_api_version_fn version;
    farm_plugin_handlers_fn handlers;
    memcpy(&version, &vsym, sizeof version);
    memcpy(&handlers, &hsym, sizeof handlers);
    int v = version();
    if (v != FARM_PLUGIN_API_VERSION) {
        snprintf(err, n,
                 "plugin API version mismatch: the plugin was built for version %d, this worker speaks version %d; "
                 "rebuild it against this worker's farm_plugin.h",
                 v, FARM_PLUGIN_API_VERSION);
        dlclose(h);
        return -1;
    }
    size_t count = 0;
    const farm_handler_t *hs = handlers(&count);
    size_t have = 0;
    (void)worker_registry_types(reg, &have);
    if (!hs || count == 0) {
        snprintf(err, n, "the plugin offers no handlers");
        dlclose(h);
        return -1;
    }
    if (count > WORKER_REGISTRY_MAX - have) {
        snprintf(err, n, "the plugin offers %zu handlers, over the %zu this worker has room for (limit %d types)",
                 count, (size_t)(WORKER_REGISTRY_MAX - have), WORKER_REGISTRY_MAX);
        dlclose(h);
        return -1;
    }
    char show[FARM_TYPE_MAX + 1];
    for (size_t i = 0; i < count; i++) {
        const char *t = hs[i].type;
        size_t len = t ? strnlen(t, FARM_TYPE_MAX + 1) : 0;
        if (!t || !hs[i].run || len > FARM_TYPE_MAX || !farm_type_valid((farm_str_t){t, (uint32_t)len})) {
            snprintf(err, n, "handler %zu: %s", i,
                     !t || !hs[i].run ? "type and run must be set"
                                      : "its type must be 1-64 bytes of [a-z0-9_.-]");
            dlclose(h);
            return -1;
        }
        bool dup = worker_registry_find(reg, t, len) != NULL;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(hs[j].type, t) == 0;
        if (dup) {
            snprintf(err, n, "handler %zu: type \"%s\" is already offered by this worker", i,
                     s_show(show, sizeof show, t));
            dlclose(h);
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        int rc = worker_registry_add(reg, &hs[i]);
        if (rc != 0) { /* checked above: cannot happen */
            snprintf(err, n, "handler %zu: %s", i, farm_strerror(rc));
            return -1;
        }
    }
    return 0;
}
