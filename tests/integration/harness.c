/* harness: see harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "farm_client.h"
#include "farm_err.h"
#include "farm_json.h"
#include "farm_time.h"

int64_t h_now(void) { return farm_mono_ms(); }

int h_slow(void) {
#ifdef FARM_SANITIZED
    return 4;
#else
    return 1;
#endif
}

const char *h_bin(const char *prog) {
    static char path[512];
    const char *sub = strcmp(prog, "farm-ventilator") == 0 ? "ventilator"
                      : strcmp(prog, "farm-sink") == 0     ? "sink"
                      : strcmp(prog, "farm-worker") == 0   ? "worker"
                      : strcmp(prog, "farm-tui") == 0      ? "tui"
                                                           : "client";
    snprintf(path, sizeof path, "%s/%s/%s", FARM_BIN_DIR, sub, prog);
    return path;
}

static int s_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

h_t *h_new(void) {
    h_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    /* The whole test is one process group, so nothing it starts outlives a kill of the group. */
    (void)setpgid(0, 0);
    snprintf(h->dir, sizeof h->dir, "/tmp/farm-it-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->db, sizeof h->db, "%s/farm.db", h->dir);
    int ports[4];
    for (int i = 0; i < 4; i++) {
        bool dup;
        do {
            ports[i] = s_free_port();
            dup = false;
            for (int j = 0; j < i; j++)
                dup |= ports[j] == ports[i];
        } while (dup);
        snprintf(h->ports[i], sizeof h->ports[i], "%d", ports[i]);
    }
    snprintf(h->ep.front, FARM_EP_MAX, "tcp://127.0.0.1:%d", ports[0]);
    snprintf(h->ep.dispatch, FARM_EP_MAX, "tcp://127.0.0.1:%d", ports[1]);
    snprintf(h->ep.results, FARM_EP_MAX, "tcp://127.0.0.1:%d", ports[2]);
    snprintf(h->ep.feed, FARM_EP_MAX, "tcp://127.0.0.1:%d", ports[3]);
    h->client = farm_client_new(h->ep.front, 3000, 2);
    assert_non_null(h->client);
    assert_true(msgpack_zone_init(&h->zone, 4096));
    return h;
}

static void s_print_log(const h_proc_t *p) {
    FILE *f = fopen(p->log, "r");
    if (!f)
        return;
    fprintf(stderr, "---- log of %s ----\n", p->name);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 200)
        fputs(line, stderr);
    fclose(f);
}

int h_stop(h_t *h, int i, int sig, int deadline_ms) {
    h_proc_t *p = &h->procs[i];
    if (!p->pid)
        return -1;
    if (kill(p->pid, sig) != 0 && errno != ESRCH)
        return -1;
    int64_t end = h_now() + deadline_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (r < 0) {
            p->pid = 0;
            return -1;
        }
        if (h_now() > end)
            return -1;
        struct timespec ts = {0, 5 * 1000000}; /* a poll interval, not a synchronisation */
        nanosleep(&ts, NULL);
    }
}

void h_free(h_t **hp) {
    h_t *h = *hp;
    if (!h)
        return;
    bool bad = getenv("FARM_TEST_LOGS") != NULL;
    for (int i = h->nprocs - 1; i >= 0; i--) {
        if (!h->procs[i].pid)
            continue;
        int st = h_stop(h, i, SIGTERM, 10000);
        if (st < 0)
            st = h_stop(h, i, SIGKILL, 5000);
        /* A clean stop exits 0; anything else is worth reading. */
        if (st != 0)
            bad = true;
    }
    if (bad)
        for (int i = 0; i < h->nprocs; i++)
            s_print_log(&h->procs[i]);
    farm_client_destroy((farm_client_t **)&h->client);
    msgpack_zone_destroy(&h->zone);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", h->dir);
    free(h);
    *hp = NULL;
}

static int s_spawn(h_t *h, const char *name, const char *const *argv, bool path);

static int s_startv(h_t *h, const char *prog, const char *name, const char *const *pre, size_t npre, va_list ap) {
    const char *argv[64];
    size_t n = 0;
    static char bin[512];
    snprintf(bin, sizeof bin, "%s", h_bin(prog));
    argv[n++] = bin;
    const char *eps[] = {"--front", h->ep.front, "--dispatch", h->ep.dispatch,
                         "--results", h->ep.results, "--feed", h->ep.feed};
    for (size_t i = 0; i < 8; i++)
        argv[n++] = eps[i];
    for (size_t i = 0; i < npre; i++)
        argv[n++] = pre[i];
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 62)
        argv[n++] = a;
    argv[n] = NULL;
    return s_spawn(h, name, argv, false);
}

int h_start_cmd(h_t *h, const char *name, const char *const *argv) { return s_spawn(h, name, argv, true); }

static int s_spawn(h_t *h, const char *name, const char *const *argv, bool path) {
    assert_true(h->nprocs < H_MAX_PROCS);
    int slot = -1;
    for (int i = 0; i < h->nprocs; i++)
        if (!h->procs[i].pid && strcmp(h->procs[i].name, name) == 0)
            slot = i; /* a restart reuses its slot and appends to its log */
    if (slot < 0)
        slot = h->nprocs++;
    h_proc_t *p = &h->procs[slot];
    char label[64];
    snprintf(label, sizeof label, "%s", name); /* name may be p->name itself */
    memcpy(p->name, label, sizeof label);
    char log[sizeof p->log];
    snprintf(log, sizeof log, "%s/%s.log", h->dir, label);
    memcpy(p->log, log, sizeof log);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (path)
            execvp(argv[0], (char *const *)argv);
        else
            execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    return slot;
}

int h_start(h_t *h, const char *prog, const char *name, ...) {
    va_list ap;
    va_start(ap, name);
    int r = s_startv(h, prog, name, NULL, 0, ap);
    va_end(ap);
    return r;
}

int h_start_vent(h_t *h, ...) {
    const char *pre[] = {"--db", h->db, "--log-level", "debug"};
    va_list ap;
    va_start(ap, h);
    int r = s_startv(h, "farm-ventilator", "vent", pre, 4, ap);
    va_end(ap);
    return r;
}

int h_start_sink(h_t *h, ...) {
    const char *pre[] = {"--db", h->db};
    va_list ap;
    va_start(ap, h);
    int r = s_startv(h, "farm-sink", "sink", pre, 2, ap);
    va_end(ap);
    return r;
}

int h_start_worker(h_t *h, const char *name, int slots, ...) {
    static char sl[16];
    snprintf(sl, sizeof sl, "%d", slots);
    const char *pre[] = {"--name", name, "--slots", sl};
    va_list ap;
    va_start(ap, slots);
    int r = s_startv(h, "farm-worker", name, pre, 4, ap);
    va_end(ap);
    return r;
}

void h_start_farm(h_t *h, int nworkers, int slots) {
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    for (int i = 0; i < nworkers; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i + 1);
        h_start_worker(h, name, slots, "--allow-exec", NULL);
    }
    h_wait_up(h, nworkers);
}

void h_wait_up(h_t *h, int nworkers) {
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    assert_true(h_wait_workers(h, nworkers, 10000));
}

static int s_callv(h_t *h, const char *fmt, va_list ap) {
    char json[65536];
    int n = vsnprintf(json, sizeof json, fmt, ap);
    assert_true(n > 0 && (size_t)n < sizeof json);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char err[256];
    if (farm_json_to_msgpack(json, (size_t)n, &pk, err, sizeof err) != 0)
        fail_msg("bad JSON in test: %s: %s", err, json);
    msgpack_zone_clear(&h->zone);
    memset(&h->err, 0, sizeof h->err);
    int rc = farm_client_callv(h->client, &b, &h->zone, &h->reply, &h->err);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int h_call(h_t *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = s_callv(h, fmt, ap);
    va_end(ap);
    return rc;
}

const msgpack_object *h_ok(h_t *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = s_callv(h, fmt, ap);
    va_end(ap);
    if (rc)
        fail_msg("request failed: %s: %s (field %s)", farm_err_name(rc), h->err.message, h->err.field);
    return &h->reply;
}

const msgpack_object *h_get(const msgpack_object *o, const char *path) {
    char key[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        if (o->type == MSGPACK_OBJECT_ARRAY) {
            unsigned long i = strtoul(key, NULL, 10);
            o = i < o->via.array.size ? &o->via.array.ptr[i] : NULL;
        } else {
            o = farm_msg_get(o, key);
        }
        path += n + (dot ? 1 : 0);
    }
    return o;
}

int64_t h_int(const msgpack_object *o, const char *path) {
    const msgpack_object *v = h_get(o, path);
    if (!v)
        fail_msg("no %s in reply", path);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    fail_msg("%s is not an integer (type %d)", path, v->type);
    return 0;
}

const char *h_str(const msgpack_object *o, const char *path) {
    static char buf[4][4096];
    static int k;
    char *b = buf[k++ % 4];
    const msgpack_object *v = h_get(o, path);
    if (!v)
        fail_msg("no %s in reply", path);
    if (v->type == MSGPACK_OBJECT_NIL)
        return "(nil)";
    if (v->type == MSGPACK_OBJECT_STR)
        return farm_str_copy(b, sizeof buf[0], (farm_str_t){v->via.str.ptr, v->via.str.size});
    if (v->type == MSGPACK_OBJECT_BIN)
        return farm_str_copy(b, sizeof buf[0], (farm_str_t){v->via.bin.ptr, v->via.bin.size});
    fail_msg("%s is not a string (type %d)", path, v->type);
    return NULL;
}

bool h_nil(const msgpack_object *o, const char *path) {
    const msgpack_object *v = h_get(o, path);
    return v && v->type == MSGPACK_OBJECT_NIL;
}

static void s_pause(void) {
    struct timespec ts = {0, 20 * 1000000}; /* poll interval */
    nanosleep(&ts, NULL);
}

bool h_wait_task(h_t *h, int64_t task, const char *state, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    do {
        if (h_call(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task) == 0 &&
            strcmp(h_str(&h->reply, "task.state"), state) == 0)
            return true;
        s_pause();
    } while (h_now() < end);
    return false;
}

const char *h_wait_job(h_t *h, int64_t job, int deadline_ms) {
    static char st[32];
    int64_t end = h_now() + deadline_ms;
    do {
        if (h_call(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job) == 0 && !h_nil(&h->reply, "job.finished_ms")) {
            snprintf(st, sizeof st, "%s", h_str(&h->reply, "job.state"));
            return st;
        }
        s_pause();
    } while (h_now() < end);
    return "timeout";
}

bool h_wait_workers(h_t *h, int n, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    do {
        if (h_call(h, "{\"op\":\"workers\"}") == 0) {
            const msgpack_object *w = h_get(&h->reply, "workers");
            int alive = 0;
            for (uint32_t i = 0; w && i < w->via.array.size; i++)
                alive += strcmp(h_str(&w->via.array.ptr[i], "state"), "alive") == 0;
            if (alive >= n)
                return true;
        }
        s_pause();
    } while (h_now() < end);
    return false;
}

int h_sh(char *out, size_t n, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
