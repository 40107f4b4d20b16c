/* farm_state: the six states of a task, declared once.
 *
 * The numbers are stored in the database, so they never change; the names
 * are the wire names of the front-door protocol.
 */
#ifndef FARM_STATE_H
#define FARM_STATE_H

#include <stdbool.h>
#include <stddef.h>

/* XX(ENUM, number, wire-name, final) */
#define FARM_STATE_MAP(XX)                  \
    XX(PENDING, 0, "pending", false)        \
    XX(RUNNING, 1, "running", false)        \
    XX(RETRYING, 2, "retrying", false)      \
    XX(COMPLETED, 3, "completed", true)     \
    XX(FAILED, 4, "failed", true)           \
    XX(CANCELLED, 5, "cancelled", true)

typedef enum {
#define XX(e, n, s, f) FARM_TASK_##e = n,
    FARM_STATE_MAP(XX)
#undef XX
} farm_state_t;

#define FARM_STATE_COUNT 6

/* Wire name of a state; "unknown" when out of range. Static string. */
const char *farm_state_name(int state);

/* State of a wire name (len bytes), or -1. */
int farm_state_parse(const char *s, size_t len);

/* True for completed, failed and cancelled. */
bool farm_state_final(int state);

#endif
