/* lan: network namespaces for the fault tests (see lan.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lan.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "farm_client.h"

int lan_sh(const char *fmt, ...) {
    char cmd[512], out[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return h_sh(out, sizeof out, "%s 2>&1", cmd);
}

const char *lan_ns(const lan_t *l, const char *host, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", l->prefix, host, l->tag);
    return buf;
}

int lan_up(lan_t *l, const char *prefix, const char *subnet, const char *const *hosts, const int *addr, int n) {
    memset(l, 0, sizeof *l);
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    snprintf(l->subnet, sizeof l->subnet, "%s", subnet);
    snprintf(l->tag, sizeof l->tag, "%d", (int)getpid() % 100000);
    for (int i = 0; i < n && i < LAN_HOSTS_MAX; i++, l->n++) {
        l->hosts[i] = hosts[i];
        l->addr[i] = addr[i];
    }
    const char *p = l->prefix, *t = l->tag;
    if (geteuid() != 0 || lan_sh("ip netns add %ssw%s", p, t) != 0)
        return -1;
    int bad = lan_sh("ip -n %ssw%s link add br0 type bridge", p, t) || lan_sh("ip -n %ssw%s link set br0 up", p, t);
    for (int i = 0; i < l->n && !bad; i++) {
        const char *h = l->hosts[i];
        bad |= lan_sh("ip netns add %s%s%s", p, h, t);
        bad |= lan_sh("ip link add %sv%s%s type veth peer name eth0 netns %s%s%s", p, h, t, p, h, t);
        bad |= lan_sh("ip link set %sv%s%s netns %ssw%s", p, h, t, p, t);
        bad |= lan_sh("ip -n %ssw%s link set %sv%s%s master br0 up", p, t, p, h, t);
        bad |= lan_sh("ip -n %s%s%s addr add %s.%d/24 dev eth0", p, h, t, l->subnet, l->addr[i]);
        bad |= lan_sh("ip -n %s%s%s link set eth0 up", p, h, t);
        bad |= lan_sh("ip -n %s%s%s link set lo up", p, h, t);
    }
    return bad ? -1 : 0;
}

void lan_down(const lan_t *l) {
    lan_sh("ip netns del %ssw%s", l->prefix, l->tag);
    for (int i = 0; i < l->n; i++)
        lan_sh("ip netns del %s%s%s", l->prefix, l->hosts[i], l->tag);
}

void lan_link(const lan_t *l, const char *host, bool up) {
    assert_int_equal(lan_sh("ip -n %ssw%s link set %sv%s%s %s", l->prefix, l->tag, l->prefix, host, l->tag,
                            up ? "up" : "down"),
                     0);
}

h_t *lan_enter_head(const lan_t *l) {
    char ns[64], path[128], head[32];
    snprintf(path, sizeof path, "/var/run/netns/%s", lan_ns(l, l->hosts[0], ns, sizeof ns));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(setns(fd, CLONE_NEWNET), 0);
    close(fd);
    h_t *h = h_new();
    snprintf(head, sizeof head, "%s.%d", l->subnet, l->addr[0]);
    farm_endpoints_from_host(&h->ep, head);
    farm_client_destroy((farm_client_t **)&h->client);
    h->client = farm_client_new(h->ep.front, 3000, 2);
    return h;
}
