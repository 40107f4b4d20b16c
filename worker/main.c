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
#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_sock.h"
#include "farm_proto.h"
#include "worker_handlers.h"
#include "worker_loop.h"
#include "worker_plugin.h"
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
#define S_PLUGINS_MAX 64 /* --plugin flags */

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
    "  --allow-exec          offer the exec type: run any command submitters give (off by default)\n"
    "  --allow-exec=LIST     offer exec for these programs only: comma-separated names (matched\n"
    "                        when argv[0] is that bare name, found in this worker's PATH) or\n"
    "                        absolute paths (matched exactly); repeatable; others fail the attempt\n"
    "  --curve-server KEY    CURVE: the head's public key, Z85 text or its .cert file\n"
    "                        (env FARM_CURVE_SERVER)\n"
    "  --curve-cert FILE     CURVE: this worker's certificate, FILE_secret beside it; its public\n"
    "                        key must be in the head's DIR/workers/ (env FARM_CURVE_CERT)\n"
    "  --heartbeat-ms N      heartbeat interval, 10..60000 (default 1000)\n"
    "  --grace-ms N          on SIGTERM, time running tasks get to finish (default 30000)\n"
    "  --kill-grace-ms N     SIGTERM to SIGKILL for a stopped exec task (default 2000)\n"
    "  --max-output BYTES    stdout and stderr kept per exec task, k/M suffixes (default 1M)\n"
    "  --prefetch N          tasks taken beyond the slots, to start the moment one frees (1000);\n"
    "                        the ventilator takes them back when another worker sits idle\n"
    "  --max-unacked N       results held until the sink stores them before taking no more\n"
    "                        work, 1..900000 (default 10000)\n"
    "  --plugin PATH.so      load a plugin and offer its task types (repeatable, up to 64);\n"
    "                        a plugin for another API version or without the entry points\n"
    "                        of farm_plugin.h is refused and the worker exits 2\n"
    "  --ingest-pause-ms N   ingest's simulated external call after every 100 records,\n"
    "                        0..60000 (default 500)\n"
    "  --list-types          print the task types this worker would offer, one a line, and exit\n"
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
    O_KILL_GRACE, O_MAX_OUTPUT, O_MAX_UNACKED, O_PREFETCH, O_LOG_LEVEL, O_HELP, O_PLUGIN, O_INGEST_PAUSE, O_LIST_TYPES,
    O_CURVE_SERVER, O_CURVE_CERT,
};

/* What main does besides running: the plugins to load, and --list-types. */
typedef struct {
    const char *plugins[S_PLUGINS_MAX]; /* --plugin paths, borrowed from argv, in order */
    size_t nplugins;
    bool list_types;                    /* print the types and exit */
} s_extra_t;

static const struct option s_options[] = {
    {"connect", required_argument, NULL, O_CONNECT},
    {"dispatch", required_argument, NULL, O_DISPATCH},
    {"results", required_argument, NULL, O_RESULTS},
    {"feed", required_argument, NULL, O_FEED},
    {"front", required_argument, NULL, O_FRONT},
    {"slots", required_argument, NULL, O_SLOTS},
    {"name", required_argument, NULL, O_NAME},
    {"allow-exec", optional_argument, NULL, O_ALLOW_EXEC},
    {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
    {"grace-ms", required_argument, NULL, O_GRACE},
    {"kill-grace-ms", required_argument, NULL, O_KILL_GRACE},
    {"max-output", required_argument, NULL, O_MAX_OUTPUT},
    {"max-unacked", required_argument, NULL, O_MAX_UNACKED},
    {"prefetch", required_argument, NULL, O_PREFETCH},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"help", no_argument, NULL, O_HELP},
    {"plugin", required_argument, NULL, O_PLUGIN},
    {"ingest-pause-ms", required_argument, NULL, O_INGEST_PAUSE},
    {"list-types", no_argument, NULL, O_LIST_TYPES},
    {"curve-server", required_argument, NULL, O_CURVE_SERVER},
    {"curve-cert", required_argument, NULL, O_CURVE_CERT},
    {NULL, 0, NULL, 0},
};

/* Fill cfg and hcfg from argv. Returns 0, 1 when --help was printed, or -1
 * after an error message. */
static int s_parse(int argc, char **argv, worker_config_t *cfg, worker_handlers_cfg_t *hcfg, s_extra_t *x) {
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
    cfg->prefetch = 1000;
    cfg->max_frame = lim.max_frame;
    *hcfg = (worker_handlers_cfg_t){
        .allow_exec = false, .max_output = lim.max_output, .kill_grace_ms = 2000, .ingest = {.pause_ms = 500}};
    memset(x, 0, sizeof *x);
    /* Two streams and the rest of a result must fit one message. */
    int64_t max_output_cap = (lim.max_frame - 256 * 1024) / 2;

    const char *connect = NULL, *dispatch = NULL, *results = NULL, *feed = NULL, *name = NULL;
    const char *curve_server = NULL, *curve_cert = NULL;
    bool exec_any = false;
    char why[512];
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
        case O_ALLOW_EXEC:
            if (!optarg)
                exec_any = true;
            else if (worker_allow_add(&hcfg->exec_allow, optarg, why, sizeof why) != 0) {
                s_bad("--allow-exec=%s: %s", optarg, why);
                return -1;
            }
            break;
        case O_CURVE_SERVER: curve_server = optarg; break;
        case O_CURVE_CERT: curve_cert = optarg; break;
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
        case O_PREFETCH:
            if (s_int("prefetch", optarg, 0, 100000, &cfg->prefetch))
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
        case O_PLUGIN:
            if (x->nplugins == S_PLUGINS_MAX) {
                s_bad("--plugin given more than %d times", S_PLUGINS_MAX);
                return -1;
            }
            x->plugins[x->nplugins++] = optarg;
            break;
        case O_INGEST_PAUSE:
            if (s_int("ingest-pause-ms", optarg, 0, 60000, &hcfg->ingest.pause_ms))
                return -1;
            break;
        case O_LIST_TYPES: x->list_types = true; break;
        case O_HELP:
            printf(s_usage, cpus);
            return 1;
        default: /* getopt said what is wrong */
            fprintf(stderr, "try 'farm-worker --help'\n");
            return -1;
        }
    }
    if (optind < argc) {
        s_bad("unexpected argument '%s'%s", argv[optind],
              exec_any ? " (an allow-list is given as --allow-exec=LIST, with '=')" : "");
        return -1;
    }
    if (exec_any && hcfg->exec_allow.n) {
        s_bad("--allow-exec (any program) and --allow-exec=LIST together: give one or the other");
        return -1;
    }
    hcfg->allow_exec = exec_any || hcfg->exec_allow.n > 0;
    hcfg->exec_allow.any = exec_any;
    if (farm_curve_client_setup(curve_server, curve_cert, why, sizeof why) != 0) {
        s_bad("%s", why);
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
    s_extra_t extra;
    int rc = s_parse(argc, argv, &cfg, &hcfg, &extra);
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
    /* Plugins after the built-ins: a refusal is a configuration error the
     * operator must see, so the worker stops before it connects. */
    for (size_t i = 0; i < extra.nplugins; i++) {
        char why[512];
        if (worker_plugin_load(reg, extra.plugins[i], why, sizeof why) != 0) {
            fprintf(stderr, "farm-worker: --plugin %s refused: %s\n", extra.plugins[i], why);
            worker_registry_destroy(&reg); /* a table of pointers: no plugin code runs */
            return S_EXIT_USAGE;
        }
        farm_log(FARM_LOG_INFO, "worker", "event=plugin-loaded path=\"%s\"", extra.plugins[i]);
    }
    if (extra.list_types) {
        size_t ntypes;
        const char *const *types = worker_registry_types(reg, &ntypes);
        for (size_t i = 0; i < ntypes; i++)
            printf("%s\n", types[i]);
        worker_registry_destroy(&reg);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (hcfg.allow_exec) {
        char allowed[512];
        worker_allow_describe(&hcfg.exec_allow, allowed, sizeof allowed);
        farm_log(FARM_LOG_INFO, "worker", "event=exec-enabled max_output=%" PRId64 " kill_grace_ms=%" PRId64
                 " allow=\"%s\"", hcfg.max_output, hcfg.kill_grace_ms, allowed);
    }
    farm_heap_tune();
    rc = worker_loop_run(&cfg, reg, s_sig_pipe[0]);
    if (rc != 0)
        return rc; /* slot threads may still use reg: leave it to the exit */
    worker_registry_destroy(&reg);
    close(s_sig_pipe[0]);
    close(s_sig_pipe[1]);
    return 0;
}
