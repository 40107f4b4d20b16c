/* farm_config: what every program of a farm must agree on.
 *
 * One set of four endpoints describes a whole farm; every program takes
 * all four flags and uses those it needs, so an operator can paste the same
 * flags everywhere. `--connect HOST` derives the endpoints from the default
 * ports. The limits are the farm's bounds on untrusted input; each has a
 * name that errors quote. Defaults live here and nowhere else.
 */
#ifndef FARM_CONFIG_H
#define FARM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FARM_PORT_FRONT 5555
#define FARM_PORT_DISPATCH 5557
#define FARM_PORT_RESULTS 5558
#define FARM_PORT_FEED 5559
#define FARM_EP_MAX 256

typedef struct {
    char front[FARM_EP_MAX];    /* REQ/REP front door, bound by the ventilator */
    char dispatch[FARM_EP_MAX]; /* tasks to workers, bound by the ventilator */
    char results[FARM_EP_MAX];  /* worker and ventilator reports, bound by the sink */
    char feed[FARM_EP_MAX];     /* status feed (PUB), bound by the sink */
} farm_endpoints_t;

/* Limits on input; XX(member, flag-name, default, what) */
#define FARM_LIMIT_MAP(XX)                                                       \
    XX(max_frame, "max-frame", 64 * 1024 * 1024, "bytes of one message")         \
    XX(max_batch, "max-batch", 10000, "tasks in one submit")                     \
    XX(max_args, "max-args", 1024 * 1024, "bytes of one task's args")            \
    XX(max_name, "max-name", 200, "bytes of a job name")                         \
    XX(max_key, "max-key", 128, "bytes of an idempotency key")                   \
    XX(max_output, "max-output", 1024 * 1024, "bytes of captured stdout/stderr") \
    XX(max_pending, "max-pending", 5000000, "stored pending tasks")

typedef struct {
#define XX(m, f, d, w) int64_t m;
    FARM_LIMIT_MAP(XX)
#undef XX
} farm_limits_t;

/* Endpoints on 127.0.0.1 with the default ports. */
void farm_endpoints_default(farm_endpoints_t *ep);

/* Endpoints of a head at `host` (a name or address) with the default ports.
 * Returns 0 or FARM_EBADREQ if host is empty or too long. */
int farm_endpoints_from_host(farm_endpoints_t *ep, const char *host);

/* Set one endpoint from a flag value. Accepts a full endpoint
 * ("tcp://h:p", "ipc://...", "inproc://...") or "host:port" (tcp assumed).
 * Returns 0 or FARM_EBADREQ. */
int farm_endpoint_set(char dst[FARM_EP_MAX], const char *value);

/* The default limits. */
void farm_limits_default(farm_limits_t *l);

/* Parse a non-negative integer with an optional k/M/G suffix (powers of
 * 1024 for sizes). Returns 0 or FARM_EBADREQ. */
int farm_parse_size(const char *s, int64_t *out);

/* True when endpoint ep can only be reached from this machine: tcp on a
 * loopback address (127.0.0.0/8, ::1, localhost), ipc or inproc. Binding
 * anything else without CURVE needs the operator's --insecure. */
bool farm_endpoint_is_local(const char *ep);

/* The host name of this machine into buf (n bytes). Returns 0 or -errno. */
int farm_hostname(char *buf, size_t n);

#endif
