/* farm_sock: sockets made the farm's way. Every socket gets explicit
 * high-water marks and LINGER (czmq's defaults are never taken blindly),
 * and bind/connect failures are reported with the endpoint. */
#ifndef FARM_SOCK_H
#define FARM_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A new socket of type on ctx with the given HWMs (both directions) and
 * linger (ms). Returns NULL and logs on failure. */
void *farm_sock_new(void *ctx, int type, int hwm, int linger_ms);

/* Bind (bind true) or connect s to ep. Returns 0 or -errno, logged. */
int farm_sock_attach(void *s, const char *ep, bool bind);

/* Set ZMQ_MAXMSGSIZE. Returns 0 or -errno. */
int farm_sock_maxmsg(void *s, int64_t bytes);

/* Receive the rest of a multi-frame message and drop it. Returns frames dropped. */
int farm_sock_drain(void *s);

/* Install SIGTERM/SIGINT handlers: the first signal sets the flag returned
 * by farm_sock_stopping(); the second ends the process at once (exit 1). */
int farm_signals_install(void);
bool farm_sock_stopping(void);

/* Keep freed heap for reuse instead of giving it back to the kernel after
 * every large message (glibc trims the heap top past 128 KiB by default:
 * each 1000-task submit then cost a brk and a TLB shootdown). At most
 * FARM_HEAP_KEEP bytes stay; blocks over FARM_HEAP_MMAP are mapped apart. */
#define FARM_HEAP_KEEP (16 << 20)
#define FARM_HEAP_MMAP (4 << 20)
void farm_heap_tune(void);

#endif
