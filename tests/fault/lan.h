/* lan: a LAN of network namespaces for the fault tests that need hosts
 * (root only): a switch namespace with a bridge, and one namespace per
 * host, each with eth0 on the bridge at SUBNET.ADDR. Names carry a prefix
 * (one test's letter) and the test's pid, so tests never share one. */
#ifndef LAN_H
#define LAN_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define LAN_HOSTS_MAX 8

typedef struct {
    char prefix[4];                     /* "f": namespace f<host><tag> */
    char tag[16];                       /* this run's pid */
    char subnet[16];                    /* "10.77.0" */
    const char *hosts[LAN_HOSTS_MAX];   /* hosts[0] is the head */
    int addr[LAN_HOSTS_MAX];            /* last byte of each host's address */
    int n;                              /* hosts */
} lan_t;

/* Run a shell command line (printf style), output dropped; its status. */
int lan_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Make the switch and the n hosts (names and address bytes copied into l).
 * 0, or -1 when namespaces cannot be made here (not root, no ip netns);
 * call lan_down either way. */
int lan_up(lan_t *l, const char *prefix, const char *subnet, const char *const *hosts, const int *addr, int n);

/* Delete every namespace of l. */
void lan_down(const lan_t *l);

/* The namespace name of host into buf. */
const char *lan_ns(const lan_t *l, const char *host, char *buf, size_t n);

/* Plug host's cable in or out at the switch. */
void lan_link(const lan_t *l, const char *host, bool up);

/* Move this process into the head's namespace and make the harness for a
 * farm whose head is there (endpoints on the head's address). */
h_t *lan_enter_head(const lan_t *l);

#endif
