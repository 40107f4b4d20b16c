/* farm_config: endpoints and limits (see farm_config.h). */
#include "farm_config.h"
#include "farm_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_tcp(char dst[FARM_EP_MAX], const char *host, int port) {
    int n = snprintf(dst, FARM_EP_MAX, "tcp://%s:%d", host, port);
    return n > 0 && n < FARM_EP_MAX ? 0 : FARM_EBADREQ;
}

void farm_endpoints_default(farm_endpoints_t *ep) { (void)farm_endpoints_from_host(ep, "127.0.0.1"); }

int farm_endpoints_from_host(farm_endpoints_t *ep, const char *host) {
    if (!host || !*host || strlen(host) > 200)
        return FARM_EBADREQ;
    if (s_tcp(ep->front, host, FARM_PORT_FRONT) || s_tcp(ep->dispatch, host, FARM_PORT_DISPATCH) ||
        s_tcp(ep->results, host, FARM_PORT_RESULTS) || s_tcp(ep->feed, host, FARM_PORT_FEED))
        return FARM_EBADREQ;
    return 0;
}

int farm_endpoint_set(char dst[FARM_EP_MAX], const char *value) {
    if (!value || !*value || strlen(value) >= FARM_EP_MAX - 7)
        return FARM_EBADREQ;
    if (strstr(value, "://")) {
        snprintf(dst, FARM_EP_MAX, "%s", value);
        return 0;
    }
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || !colon[1])
        return FARM_EBADREQ;
    snprintf(dst, FARM_EP_MAX, "tcp://%s", value);
    return 0;
}

void farm_limits_default(farm_limits_t *l) {
#define XX(m, f, d, w) l->m = (d);
    FARM_LIMIT_MAP(XX)
#undef XX
}

int farm_parse_size(const char *s, int64_t *out) {
    if (!s || !*s)
        return FARM_EBADREQ;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return FARM_EBADREQ;
    int64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'G')
        mul = 1024 * 1024 * 1024, end++;
    if (*end || v > INT64_MAX / mul)
        return FARM_EBADREQ;
    *out = (int64_t)v * mul;
    return 0;
}

int farm_hostname(char *buf, size_t n) {
    if (gethostname(buf, n) != 0)
        return -errno;
    buf[n - 1] = '\0';
    return 0;
}

bool farm_endpoint_is_local(const char *ep) {
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *h = ep + 6;
    const char *end = strrchr(h, ':');
    if (!end)
        return false;
    size_t n = (size_t)(end - h);
    if ((n == 9 && strncmp(h, "localhost", 9) == 0) || (n == 5 && strncmp(h, "[::1]", 5) == 0))
        return true;
    if (n < 4 || strncmp(h, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
            return false;
    return true;
}
