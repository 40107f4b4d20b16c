/* worker_registry: a fixed table of handlers (see worker_registry.h). A
 * worker offers a handful of types, so lookups are a linear scan over a
 * table that never moves once the slots run. */
#include "worker_registry.h"

#include "farm_err.h"
#include "farm_proto.h"

#include <stdlib.h>
#include <string.h>

struct worker_registry {
    farm_handler_t handlers[WORKER_REGISTRY_MAX]; /* registered handlers, in order */
    const char *types[WORKER_REGISTRY_MAX];       /* handlers[i].type, for heartbeats */
    size_t n;                                     /* entries in use */
};

worker_registry_t *worker_registry_new(void) { return calloc(1, sizeof(worker_registry_t)); }

void worker_registry_destroy(worker_registry_t **p) {
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

int worker_registry_add(worker_registry_t *r, const farm_handler_t *h) {
    if (!h || !h->type || !h->run)
        return FARM_EBADREQ;
    size_t len = strlen(h->type);
    if (len > FARM_TYPE_MAX || !farm_type_valid((farm_str_t){h->type, (uint32_t)len}))
        return FARM_EBADREQ;
    if (worker_registry_find(r, h->type, len))
        return FARM_ECONFLICT;
    if (r->n == WORKER_REGISTRY_MAX)
        return FARM_ETOOLARGE;
    r->handlers[r->n] = *h;
    r->types[r->n] = h->type;
    r->n++;
    return 0;
}

const farm_handler_t *worker_registry_find(const worker_registry_t *r, const char *type, size_t len) {
    if (!type)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->handlers[i].type) == len && memcmp(r->handlers[i].type, type, len) == 0)
            return &r->handlers[i];
    return NULL;
}

const char *const *worker_registry_types(const worker_registry_t *r, size_t *n) {
    *n = r->n;
    return r->types;
}
