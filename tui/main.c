/* farm-tui: the live monitor of a farm.
 *
 * main parses the flags (every farm program takes the four endpoint
 * flags; this one uses --front and --feed and ignores the others),
 * installs the signal handling, opens the feed and the front-door helper,
 * starts curses and runs the loop: one zmq_poll over the terminal, a
 * self-pipe for signals, the feed and the helper's replies, with a timeout
 * that lands on the next frame or poll cycle.
 *
 * The terminal is restored on every way out: the normal path and
 * SIGINT/SIGTERM/SIGHUP (their handlers only note the signal and write to
 * the self-pipe, the loop then ends and endwin runs) call endwin; exit()
 * from anywhere runs it through atexit; a crash (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT) restores the saved termios and writes the terminal's
 * own "leave the alternate screen, show the cursor, plain attributes"
 * strings with async-signal-safe calls before dying of the same signal.
 * SIGWINCH is curses' own business: it arrives as KEY_RESIZE.
 */
#include "tui.h"

#include "farm_config.h"
#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_sock.h"
#include "farm_time.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <term.h>
#include <termios.h>
#include <unistd.h>
#include <zmq.h>

#define S_FEED_BUDGET 5000 /* feed messages read per loop turn before input is looked at again */
/* The feed is read in ticks rather than on every message: a busy farm
 * publishes hundreds of small messages a second, and waking for each costs
 * more than decoding it. Between ticks the SUB socket's queue holds them. */
#define S_FEED_TICK_MS 50

static volatile sig_atomic_t s_signal;
static int s_pipe[2] = {-1, -1};
static struct termios s_termios;
static bool s_have_termios;
static char s_restore[256];
static size_t s_restore_len;

static void s_on_signal(int sig) {
    int e = errno;
    if (!s_signal)
        s_signal = sig;
    if (s_pipe[1] >= 0) {
        ssize_t n = write(s_pipe[1], "s", 1);
        (void)n; /* a full pipe already wakes the loop */
    }
    errno = e;
}

static void s_on_crash(int sig) {
    if (s_have_termios)
        tcsetattr(STDIN_FILENO, TCSANOW, &s_termios);
    if (s_restore_len) {
        ssize_t n = write(STDOUT_FILENO, s_restore, s_restore_len);
        (void)n;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_atexit(void) { tui_view_end(); }

/* Append the terminal's capability cap to the crash restore string. */
static void s_restore_add(const char *cap) {
    char *s = tigetstr(cap);
    if (!s || s == (char *)-1)
        return;
    size_t n = strlen(s);
    if (s_restore_len + n < sizeof s_restore) {
        memcpy(s_restore + s_restore_len, s, n);
        s_restore_len += n;
    }
}

static int s_install_signals(void) {
    if (pipe2(s_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESTART;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return -errno;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -errno;
#if !defined(__SANITIZE_ADDRESS__)
    /* Under AddressSanitizer its own handlers report crashes; ours would hide them. */
    sa.sa_handler = s_on_crash;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    int crash[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof crash / sizeof crash[0]; i++)
        if (sigaction(crash[i], &sa, NULL) != 0)
            return -errno;
#else
    (void)s_on_crash;
#endif
    return 0;
}

static void s_help(FILE *out) {
    fprintf(out,
            "usage: farm-tui [--server EP | --front EP] [--feed EP] [--connect HOST] [--refresh-ms N]\n"
            "A live monitor of a farm: totals, throughput, jobs, workers and failures, with keys to\n"
            "open jobs and tasks, cancel and retry. It reads the front door and the status feed and\n"
            "never touches the database. Press ? inside for the keys.\n\n"
            "options:\n"
            "  --server EP, --front EP  the front door (env FARM_SERVER; default tcp://127.0.0.1:%d)\n"
            "  --feed EP           the status feed (default: the front door's host, port %d)\n"
            "  --connect HOST      a farm whose head is HOST, on the default ports\n"
            "  --refresh-ms N      time between frames, 20..1000 (default 200)\n"
            "  --curve-server KEY  CURVE: the head's public key, Z85 or its .cert file (env FARM_CURVE_SERVER)\n"
            "  --curve-cert FILE   CURVE: this monitor's certificate (FILE_secret beside it), authorised\n"
            "                      in the head's DIR/clients/ (env FARM_CURVE_CERT)\n"
            "  --dispatch EP, --results EP  accepted and ignored (every farm program takes them)\n"
            "  --help              this text\n"
            "  --version           the version\n"
            "An endpoint is tcp://HOST:PORT, HOST:PORT or ipc://PATH.\n"
            "exit status: 0 after q, 2 usage error, 1 failure, 128+N after signal N\n",
            FARM_PORT_FRONT, FARM_PORT_FEED);
}

/* The feed on the front door's host when only the front door was given. */
static void s_feed_from_front(farm_endpoints_t *ep) {
    const char *p = strncmp(ep->front, "tcp://", 6) == 0 ? ep->front + 6 : NULL;
    const char *colon = p ? strrchr(p, ':') : NULL;
    if (!colon || colon == p)
        return;
    char host[FARM_EP_MAX];
    snprintf(host, sizeof host, "%.*s", (int)(colon - p), p);
    snprintf(ep->feed, sizeof ep->feed, "tcp://%.200s:%d", host, FARM_PORT_FEED);
}

/* Parse argv into t. Returns -1 to go on, else the exit status. */
static int s_args(tui_t *t, int argc, char **argv) {
    enum { O_SERVER = 1, O_FEED, O_CONNECT, O_REFRESH, O_IGNORED, O_HELP, O_VERSION, O_CURVE_SERVER, O_CURVE_CERT };
    static const struct option opts[] = {
        {"server", 1, 0, O_SERVER},      {"front", 1, 0, O_SERVER},       {"feed", 1, 0, O_FEED},
        {"connect", 1, 0, O_CONNECT},    {"refresh-ms", 1, 0, O_REFRESH}, {"dispatch", 1, 0, O_IGNORED},
        {"results", 1, 0, O_IGNORED},    {"help", 0, 0, O_HELP},          {"version", 0, 0, O_VERSION},
        {"curve-server", 1, 0, O_CURVE_SERVER}, {"curve-cert", 1, 0, O_CURVE_CERT}, {0, 0, 0, 0}};
    const char *front = NULL, *feed = NULL, *connect = NULL, *curve_server = NULL, *curve_cert = NULL;
    t->refresh_ms = 200;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: front = optarg; break;
        case O_FEED: feed = optarg; break;
        case O_CONNECT: connect = optarg; break;
        case O_IGNORED: break;
        case O_CURVE_SERVER: curve_server = optarg; break;
        case O_CURVE_CERT: curve_cert = optarg; break;
        case O_REFRESH: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || v < 20 || v > 1000) {
                fprintf(stderr, "farm-tui: --refresh-ms: expected an integer in 20..1000, got '%s'\n", optarg);
                return 2;
            }
            t->refresh_ms = (int)v;
            break;
        }
        case 'h':
        case O_HELP: s_help(stdout); return 0;
        case O_VERSION: printf("farm-tui %s\n", FARM_VERSION); return 0;
        case ':': fprintf(stderr, "farm-tui: %s needs a value\nTry 'farm-tui --help'.\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "farm-tui: unknown option '%s'\nTry 'farm-tui --help'.\n", argv[optind - 1]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "farm-tui: unexpected argument '%s'\nTry 'farm-tui --help'.\n", argv[optind]);
        return 2;
    }
    char why[600];
    if (farm_curve_client_setup(curve_server, curve_cert, why, sizeof why) != 0) {
        fprintf(stderr, "farm-tui: %s\nTry 'farm-tui --help'.\n", why);
        return 2;
    }
    farm_endpoints_default(&t->ep);
    const char *env = getenv("FARM_SERVER");
    if (env && *env && !front && !connect) {
        if (farm_endpoint_set(t->ep.front, env) != 0) {
            fprintf(stderr, "farm-tui: FARM_SERVER='%s' is not an endpoint (tcp://HOST:PORT or HOST:PORT)\n", env);
            return 2;
        }
        s_feed_from_front(&t->ep);
    }
    if (connect && farm_endpoints_from_host(&t->ep, connect) != 0) {
        fprintf(stderr, "farm-tui: --connect: '%s' is not a host name\n", connect);
        return 2;
    }
    if (front) {
        if (farm_endpoint_set(t->ep.front, front) != 0) {
            fprintf(stderr, "farm-tui: --front: '%s' is not an endpoint (tcp://HOST:PORT, HOST:PORT or ipc://PATH)\n",
                    front);
            return 2;
        }
        if (!connect)
            s_feed_from_front(&t->ep);
    }
    if (feed && farm_endpoint_set(t->ep.feed, feed) != 0) {
        fprintf(stderr, "farm-tui: --feed: '%s' is not an endpoint (tcp://HOST:PORT, HOST:PORT or ipc://PATH)\n", feed);
        return 2;
    }
    return -1;
}

/* Open the connections with every signal blocked, so that the threads
 * ZeroMQ and the helper start never take the loop's signals. */
static int s_connect(tui_t *t) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    t->ctx = zmq_ctx_new();
    if (!t->ctx)
        rc = -errno;
    if (rc == 0 && !(t->door = tui_door_new(t->ctx, t->ep.front, TUI_DOOR_TIMEOUT_MS)))
        rc = -errno;
    if (rc == 0)
        rc = tui_feed_open(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void s_disconnect(tui_t *t) {
    tui_door_destroy(&t->door);
    tui_feed_close(t);
    if (t->ctx)
        zmq_ctx_term(t->ctx);
    t->ctx = NULL;
}

static int s_loop(tui_t *t) {
    int64_t next_frame = 0, next_feed = 0;
    int idle_wakeups = 0;
    while (!t->quit && !s_signal) {
        int64_t now = farm_mono_ms();
        if (now >= t->next_poll_mono)
            tui_req_poll(t, now);
        int64_t seen = t->m.feed_stats_mono > t->m.feed_open_mono ? t->m.feed_stats_mono : t->m.feed_open_mono;
        if (now - seen > TUI_FEED_REOPEN_MS) {
            int rc = tui_feed_open(t);
            if (rc)
                tui_msg(t, true, "feed %s: %s", t->ep.feed, zmq_strerror(-rc));
            if (!t->sub)
                t->m.feed_open_mono = now; /* try again later */
        }
        bool feed_due = t->sub && now >= next_feed;
        int64_t wake = next_frame < t->next_poll_mono ? next_frame : t->next_poll_mono;
        if (t->sub && !feed_due && next_feed < wake)
            wake = next_feed;
        long timeout = wake - now;
        if (timeout < 0)
            timeout = 0;
        if (timeout > 1000)
            timeout = 1000;
        zmq_pollitem_t items[4] = {{NULL, STDIN_FILENO, ZMQ_POLLIN, 0},
                                   {NULL, s_pipe[0], ZMQ_POLLIN, 0},
                                   {tui_door_socket(t->door), 0, ZMQ_POLLIN, 0},
                                   {t->sub, 0, ZMQ_POLLIN, 0}};
        int nitems = feed_due ? 4 : 3;
        if (zmq_poll(items, nitems, timeout) < 0) {
            if (errno != EINTR) {
                tui_view_end();
                fprintf(stderr, "farm-tui: poll: %s\n", zmq_strerror(errno));
                return 1;
            }
            continue; /* a signal: SIGWINCH shows as KEY_RESIZE below on the next turn */
        }
        if (items[1].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(s_pipe[0], buf, sizeof buf) > 0)
                ;
        }
        bool input = false;
        int key;
        while ((key = wgetch(t->lay.input)) != ERR) {
            tui_input_key(t, key);
            input = true;
            if (t->quit)
                break;
        }
        /* A terminal that is gone stays readable and yields nothing. */
        if ((items[0].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) && !input) {
            if (++idle_wakeups > 1000)
                return 1;
        } else {
            idle_wakeups = 0;
        }
        if (nitems == 4 && (items[3].revents & ZMQ_POLLIN)) {
            int rc = tui_feed_drain(t, S_FEED_BUDGET);
            if (rc < 0)
                tui_feed_close(t); /* reopened by the stale-feed check */
            /* A full budget means more is waiting: read on at the next turn. */
            next_feed = rc >= S_FEED_BUDGET ? 0 : farm_mono_ms() + S_FEED_TICK_MS;
        }
        tui_reply_t r;
        int rc;
        while ((rc = tui_door_recv(t->door, &r)) == 1) {
            tui_req_reply(t, &r);
            tui_door_reply_free(&r);
        }
        if (rc < 0)
            tui_msg(t, true, "front-door helper: %s", strerror(-rc));
        now = farm_mono_ms();
        if (input || now >= next_frame) {
            tui_view_draw(t);
            next_frame = now + t->refresh_ms;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    setlocale(LC_ALL, "");
    static tui_t t; /* large; static storage keeps it off the stack */
    tui_model_init(&t.m);
    int rc = s_args(&t, argc, argv);
    if (rc >= 0)
        return rc;
    t.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    tui_text_utf8(t.utf8);
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "farm-tui: needs a terminal on stdin and stdout\n");
        return 2;
    }
    /* One chunk large enough for a busy sink's batch of task events: the
     * zone is cleared for every feed message and keeps its first chunk, so
     * decoding allocates nothing in the steady state. */
    farm_heap_tune();
    if (!msgpack_zone_init(&t.zone, 2 * 1024 * 1024)) {
        fprintf(stderr, "farm-tui: out of memory\n");
        return 1;
    }
    rc = s_install_signals();
    if (rc == 0)
        rc = s_connect(&t);
    if (rc) {
        fprintf(stderr, "farm-tui: cannot start: %s\n", zmq_strerror(-rc));
        s_disconnect(&t);
        msgpack_zone_destroy(&t.zone);
        return 1;
    }
    s_have_termios = tcgetattr(STDIN_FILENO, &s_termios) == 0;
    /* Log lines would scribble over the screen: only errors, and not to a terminal. */
    farm_log_set_level(FARM_LOG_ERROR);
    int saved_err = -1;
    if (isatty(STDERR_FILENO)) {
        int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
        saved_err = nul >= 0 ? dup(STDERR_FILENO) : -1;
        if (saved_err >= 0 && dup2(nul, STDERR_FILENO) < 0) {
            close(saved_err);
            saved_err = -1;
        }
        if (nul >= 0)
            close(nul);
    }
    int status = 1;
    if (atexit(s_atexit) != 0 || tui_view_start(&t) != 0) {
        tui_view_end();
        if (saved_err >= 0)
            dup2(saved_err, STDERR_FILENO);
        fprintf(stderr, "farm-tui: cannot start the terminal (TERM=%s)\n", getenv("TERM") ? getenv("TERM") : "");
    } else {
        s_restore_add("rmcup");
        s_restore_add("cnorm");
        s_restore_add("sgr0");
        s_restore_add("rmkx");
        status = s_loop(&t);
        tui_view_end();
        if (saved_err >= 0)
            dup2(saved_err, STDERR_FILENO);
    }
    if (saved_err >= 0)
        close(saved_err);
    s_disconnect(&t);
    tui_close_task(&t);
    tui_close_job(&t);
    tui_model_free(&t.m);
    msgpack_zone_destroy(&t.zone);
    if (s_signal)
        return 128 + s_signal;
    return status;
}
