/* worker_registry: the task types a worker offers.
 *
 * A small table of farm_handler_t, filled once at start (built-ins first,
 * plugins later) and read-only afterwards, so slot threads and the main
 * thread may look handlers up without locks. The order of registration is
 * the order of the "types" list in heartbeats.
 */
#ifndef WORKER_REGISTRY_H
#define WORKER_REGISTRY_H

#include "farm_plugin.h"

#include <stddef.h>

/* At most this many handlers per worker. */
#define WORKER_REGISTRY_MAX 256

typedef struct worker_registry worker_registry_t;

/* A new empty registry, or NULL when out of memory. */
worker_registry_t *worker_registry_new(void);

/* Free *p and set it to NULL; safe on NULL and twice. */
void worker_registry_destroy(worker_registry_t **p);

/* Register a copy of *h. h->type is borrowed and must outlive the registry.
 * Returns 0, FARM_EBADREQ when the type name is invalid or run is NULL,
 * FARM_ECONFLICT when the type is already registered, FARM_ETOOLARGE when
 * the table is full. */
int worker_registry_add(worker_registry_t *r, const farm_handler_t *h);

/* The handler of type (len bytes, not NUL terminated), or NULL. Borrowed,
 * valid as long as the registry. */
const farm_handler_t *worker_registry_find(const worker_registry_t *r, const char *type, size_t len);

/* The registered type names, in registration order; *n is set to their
 * number. Borrowed, valid until the next worker_registry_add(). */
const char *const *worker_registry_types(const worker_registry_t *r, size_t *n);

#endif
