/* farm-worker: runs tasks for a farm.
 *
 * This file only turns the command line into a worker_config_t, installs the
 * signal handlers and hands over to worker_loop. SIGTERM and SIGINT write a
 * byte into a non-blocking pipe (the only async-signal-safe way to wake a
 * poll loop from any thread the kernel picks); the loop reads it and drains
 * on the first, gives up on the second. czmq's signal handling is not used.
 * SIGPIPE is ignored so a closed stderr cannot kill the worker; SIGCHLD
 * keeps its default, which worker_exec relies on to reap its children.
 */
#include "farm_config.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "worker_handlers.h"
#include "worker_loop.h"
#include "worker_registry.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_EXIT_USAGE 2

static const char s_usage[] =
    "usage: farm-worker [options]\n"
    "\n"
    "Run tasks for a farm: take them from the ventilator, report to the sink.\n"
    "\n"
    "  --connect HOST        the head's host: tcp://HOST:5557 (dispatch), :5558 (results),\n"
    "                        :5559 (feed); default 127.0.0.1\n"
    "  --dispatch EP         the ventilator's task endpoint (default tcp://127.0.0.1:5557)\n"
    "  --results EP          the sink's report endpoint (default tcp://127.0.0.1:5558)\n"
    "  --feed EP             the sink's status feed (default tcp://127.0.0.1:5559)\n"
    "  --front EP            accepted and ignored (the same flags work for every program)\n"
    "  --slots N             tasks run at once, 1..4096 (default: online CPUs, here %ld)\n"
    "  --name NAME           this worker's name, [A-Za-z0-9_.:@-]{1,200} (default: hostname-pid)\n"
    "  --allow-exec          offer the exec type: run commands given by submitters (off by default)\n"
    "  --heartbeat-ms N      heartbeat interval, 10..60000 (default 1000)\n"
    "  --grace-ms N          on SIGTERM, time running tasks get to finish (default 30000)\n"
    "  --kill-grace-ms N     SIGTERM to SIGKILL for a stopped exec task (default 2000)\n"
    "  --max-output BYTES    stdout and stderr kept per exec task, k/M suffixes (default 1M)\n"
    "  --max-unacked N       results held until the sink stores them before taking no more\n"
    "                        work, 1..900000 (default 10000)\n"
    "  --log-level LEVEL     debug, info, warn or error (default info)\n"
    "  --help                this text\n"
    "\n"
    "SIGTERM or SIGINT drains: no new tasks, running ones finish (up to --grace-ms), results\n"
    "are acknowledged, then the worker exits 0. A second signal exits at once with status 1.\n";

static int s_sig_pipe[2] = {-1, -1};

static void s_on_signal(int sig) {
    int saved = errno;
    char c = (char)sig;
    ssize_t w = write(s_sig_pipe[1], &c, 1);
    (void)w; /* a full pipe already holds enough signals */
    errno = saved;
}

static int s_signals_install(void) {
    if (pipe2(s_sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESTART;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -errno;
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -errno;
    return 0;
}

/* Say what is wrong with the command line, on stderr. */
static void s_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_bad(const char *fmt, ...) {
    fputs("farm-worker: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry 'farm-worker --help'\n", stderr);
}

/* Parse a decimal integer in min..max; on error say so and return -1. */
static int s_int(const char *flag, const char *v, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        s_bad("--%s must be an integer %" PRId64 "..%" PRId64 ", not '%s'", flag, min, max, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Set an endpoint from its flag (v NULL: keep it). Returns 0 or -1 after
 * saying why. */
static int s_endpoint(const char *flag, char dst[FARM_EP_MAX], const char *v) {
    if (!v || farm_endpoint_set(dst, v) == 0)
        return 0;
    s_bad("--%s must be tcp://HOST:PORT, HOST:PORT, ipc://PATH or inproc://NAME, not '%s'", flag, v);
    return -1;
}

static bool s_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > WORKER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.:@-", c)))
            return false;
    }
    return true;
}

/* hostname-pid, with anything a name may not hold replaced by '_'. */
static void s_default_name(char *dst, size_t n, const char *host) {
    snprintf(dst, n, "%.180s-%ld", host[0] ? host : "worker", (long)getpid());
    for (char *p = dst; *p; p++)
        if (!s_name_ok((char[]){*p, '\0'}))
            *p = '_';
}

enum {
    O_CONNECT = 256, O_DISPATCH, O_RESULTS, O_FEED, O_FRONT, O_SLOTS, O_NAME, O_ALLOW_EXEC, O_HEARTBEAT, O_GRACE,
    O_KILL_GRACE, O_MAX_OUTPUT, O_MAX_UNACKED, O_LOG_LEVEL, O_HELP,
};

static const struct option s_options[] = {
    {"connect", required_argument, NULL, O_CONNECT},
    {"dispatch", required_argument, NULL, O_DISPATCH},
    {"results", required_argument, NULL, O_RESULTS},
    {"feed", required_argument, NULL, O_FEED},
    {"front", required_argument, NULL, O_FRONT},
    {"slots", required_argument, NULL, O_SLOTS},
    {"name", required_argument, NULL, O_NAME},
    {"allow-exec", no_argument, NULL, O_ALLOW_EXEC},
    {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
    {"grace-ms", required_argument, NULL, O_GRACE},
    {"kill-grace-ms", required_argument, NULL, O_KILL_GRACE},
    {"max-output", required_argument, NULL, O_MAX_OUTPUT},
    {"max-unacked", required_argument, NULL, O_MAX_UNACKED},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* Fill cfg and hcfg from argv. Returns 0, 1 when --help was printed, or -1
 * after an error message. */
static int s_parse(int argc, char **argv, worker_config_t *cfg, worker_handlers_cfg_t *hcfg) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpus = cpus < 1 ? 1 : cpus > WORKER_SLOTS_MAX ? WORKER_SLOTS_MAX : cpus;
    farm_limits_t lim;
    farm_limits_default(&lim);
    memset(cfg, 0, sizeof *cfg);
    farm_endpoints_default(&cfg->ep);
    cfg->slots = (int)cpus;
    cfg->heartbeat_ms = 1000;
    cfg->grace_ms = 30000;
    cfg->kill_grace_ms = 2000;
    cfg->max_unacked = 10000;
    cfg->max_frame = lim.max_frame;
    *hcfg = (worker_handlers_cfg_t){.allow_exec = false, .max_output = lim.max_output, .kill_grace_ms = 2000};
    /* Two streams and the rest of a result must fit one message. */
    int64_t max_output_cap = (lim.max_frame - 256 * 1024) / 2;

    const char *connect = NULL, *dispatch = NULL, *results = NULL, *feed = NULL, *name = NULL;
    int64_t v;
    int c;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", s_options, NULL)) != -1) {
        switch (c) {
        case O_CONNECT: connect = optarg; break;
        case O_DISPATCH: dispatch = optarg; break;
        case O_RESULTS: results = optarg; break;
        case O_FEED: feed = optarg; break;
        case O_FRONT: break;
        case O_NAME: name = optarg; break;
        case O_ALLOW_EXEC: hcfg->allow_exec = true; break;
        case O_SLOTS:
            if (s_int("slots", optarg, 1, WORKER_SLOTS_MAX, &v))
                return -1;
            cfg->slots = (int)v;
            break;
        case O_HEARTBEAT:
            if (s_int("heartbeat-ms", optarg, 10, 60000, &cfg->heartbeat_ms))
                return -1;
            break;
        case O_GRACE:
            if (s_int("grace-ms", optarg, 0, 86400000, &cfg->grace_ms))
                return -1;
            break;
        case O_KILL_GRACE:
            if (s_int("kill-grace-ms", optarg, 0, 3600000, &cfg->kill_grace_ms))
                return -1;
            hcfg->kill_grace_ms = cfg->kill_grace_ms;
            break;
        case O_MAX_UNACKED:
            if (s_int("max-unacked", optarg, 1, 900000, &cfg->max_unacked))
                return -1;
            break;
        case O_MAX_OUTPUT:
            if (farm_parse_size(optarg, &v) != 0 || v > max_output_cap) {
                s_bad("--max-output must be a size 0..%" PRId64 " (k/M suffixes allowed), not '%s'", max_output_cap,
                      optarg);
                return -1;
            }
            hcfg->max_output = v;
            break;
        case O_LOG_LEVEL: {
            farm_log_level_t level;
            if (farm_log_parse_level(optarg, &level) != 0) {
                s_bad("--log-level must be debug, info, warn or error, not '%s'", optarg);
                return -1;
            }
            farm_log_set_level(level);
            break;
        }
        case O_HELP:
            printf(s_usage, cpus);
            return 1;
        default: /* getopt said what is wrong */
            fprintf(stderr, "try 'farm-worker --help'\n");
            return -1;
        }
    }
    if (optind < argc) {
        s_bad("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (connect && farm_endpoints_from_host(&cfg->ep, connect) != 0) {
        s_bad("--connect needs a host name or address, not '%s'", connect);
        return -1;
    }
    if (s_endpoint("dispatch", cfg->ep.dispatch, dispatch) || s_endpoint("results", cfg->ep.results, results) ||
        s_endpoint("feed", cfg->ep.feed, feed))
        return -1;
    if (farm_hostname(cfg->host, sizeof cfg->host) != 0)
        snprintf(cfg->host, sizeof cfg->host, "unknown");
    if (name && !s_name_ok(name)) {
        s_bad("--name must be 1-200 characters of [A-Za-z0-9_.:@-], not '%s'", name);
        return -1;
    }
    if (name)
        snprintf(cfg->name, sizeof cfg->name, "%s", name);
    else
        s_default_name(cfg->name, sizeof cfg->name, cfg->host);
    return 0;
}

int main(int argc, char **argv) {
    worker_config_t cfg;
    worker_handlers_cfg_t hcfg;
    int rc = s_parse(argc, argv, &cfg, &hcfg);
    if (rc != 0)
        return rc > 0 ? 0 : S_EXIT_USAGE;

    farm_limits_t lim;
    farm_limits_default(&lim);
    farm_proto_set_limits(&lim);
    rc = s_signals_install();
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal op=signals err=\"%s\"", strerror(-rc));
        return 1;
    }
    worker_registry_t *reg = worker_registry_new();
    if (!reg) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal err=\"out of memory\"");
        return 1;
    }
    rc = worker_handlers_register(reg, &hcfg);
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal op=register err=\"%s\"", farm_strerror(rc));
        worker_registry_destroy(&reg);
        return 1;
    }
    if (hcfg.allow_exec)
        farm_log(FARM_LOG_INFO, "worker", "event=exec-enabled max_output=%" PRId64 " kill_grace_ms=%" PRId64,
                 hcfg.max_output, hcfg.kill_grace_ms);
    rc = worker_loop_run(&cfg, reg, s_sig_pipe[0]);
    if (rc != 0)
        return rc; /* slot threads may still use reg: leave it to the exit */
    worker_registry_destroy(&reg);
    close(s_sig_pipe[0]);
    close(s_sig_pipe[1]);
    return 0;
}
