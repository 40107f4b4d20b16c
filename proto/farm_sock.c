/* farm_sock: socket set-up and signal handling shared by the programs. */
#include "farm_sock.h"
#include "farm_log.h"

#include <errno.h>
#include <signal.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

void *farm_sock_new(void *ctx, int type, int hwm, int linger_ms) {
    void *s = zmq_socket(ctx, type);
    if (!s) {
        farm_log(FARM_LOG_ERROR, "sock", "op=socket err=\"%s\"", zmq_strerror(errno));
        return NULL;
    }
    if (zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof linger_ms)) {
        farm_log(FARM_LOG_ERROR, "sock", "op=setsockopt err=\"%s\"", zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int farm_sock_attach(void *s, const char *ep, bool bind) {
    int rc = bind ? zmq_bind(s, ep) : zmq_connect(s, ep);
    if (rc) {
        int err = errno;
        farm_log(FARM_LOG_ERROR, "sock", "op=%s endpoint=%s err=\"%s\"", bind ? "bind" : "connect", ep,
                 zmq_strerror(err));
        return -err;
    }
    return 0;
}

int farm_sock_maxmsg(void *s, int64_t bytes) {
    return zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &bytes, sizeof bytes) ? -errno : 0;
}

int farm_sock_drain(void *s) {
    int more = 0, n = 0;
    size_t sz = sizeof more;
    while (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        zmq_msg_close(&m);
        n++;
    }
    return n;
}

static volatile sig_atomic_t s_stops;

static void s_on_signal(int sig) {
    (void)sig;
    if (++s_stops >= 2)
        _exit(1);
}

void farm_heap_tune(void) {
    /* mallopt returns 0 on failure (so does every call under a sanitizer's
     * allocator); the defaults then stay, which is only slower. */
    if (!mallopt(M_TRIM_THRESHOLD, FARM_HEAP_KEEP) || !mallopt(M_MMAP_THRESHOLD, FARM_HEAP_MMAP))
        farm_log(FARM_LOG_DEBUG, "sock", "event=mallopt-failed");
}

int farm_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

bool farm_sock_stopping(void) { return s_stops > 0; }
