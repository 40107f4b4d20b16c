/* farm_curve: certificates, client keys, and the head's ZAP handler (see
 * farm_curve.h).
 *
 * The ZAP handler thread owns one REP socket and two key sets, one per
 * folder (clients/, workers/). A set remembers a signature of its folder
 * (a sum of hashes of each *.cert entry's name, inode, size and mtime, plus
 * the folder's mtime) and reloads only when the signature moves, so the
 * once-a-second check costs a readdir and a few stats, and a certificate is
 * parsed only when something changed. Sets are touched by the handler
 * thread alone (and by server_new before the thread starts), so they need
 * no lock. The refusal table is a small fixed array: a refused peer that
 * reconnects ten times a second costs one log line per 10 s, and the table
 * cannot grow however many keys knock.
 */
#include "farm_curve.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_time.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_KEYS_MAX 65536         /* certificates read from one folder */
#define S_CHECK_MS 1000          /* a folder is looked at no more often than this ... */
#define S_UNKNOWN_CHECK_MS 100   /* ... unless an unknown key arrives and its mtime moved */
#define S_REFUSALS 64            /* refusals remembered for rate-limited logging */
#define S_REFUSAL_LOG_MS 10000   /* one line per key and domain per this long */
#define S_WATCH_LOG_MS 30000     /* a client logs a refusal of its key this often */
#define S_ZAP_FRAMES 16          /* frames of a ZAP request kept (libzmq sends 7) */
#define S_POLL_MS 100            /* the handler thread checks its stop flag this often */

static int s_why(char *why, size_t n, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int s_why(char *why, size_t n, int code, const char *fmt, ...) {
    if (why && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* True when t is a 40-character Z85 key; out (32 bytes, may be NULL) gets it. */
static bool s_z85(const char *t, uint8_t *out) {
    uint8_t tmp[32];
    return t && strlen(t) == 40 && zmq_z85_decode(out ? out : tmp, t) != NULL;
}

/* ---- certificates ----------------------------------------------------------- */

/* The text of key `key` ("public-key" or "secret-key") in the certificate
 * file czmq would read for path, compared with what zcert decoded: czmq does
 * not check that a key is valid Z85 and would quietly decode garbage. */
static bool s_key_text_ok(const char *file, const char *key, const char *decoded) {
    zconfig_t *root = zconfig_load(file);
    if (!root)
        return false;
    char path[32];
    snprintf(path, sizeof path, "curve/%s", key);
    const char *t = zconfig_get(root, path, NULL);
    bool ok = t && s_z85(t, NULL) && strcmp(t, decoded) == 0;
    zconfig_destroy(&root);
    return ok;
}

int farm_curve_cert_read(const char *path, bool need_secret, char pub[FARM_CURVE_Z85], char sec[FARM_CURVE_Z85],
                         char *why, size_t n) {
    struct stat st;
    if (!path || !*path)
        return s_why(why, n, FARM_EBADREQ, "no certificate file given");
    if (stat(path, &st) != 0)
        return s_why(why, n, FARM_EBADREQ, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return s_why(why, n, FARM_EBADREQ, "%s is not a file", path);
    if (access(path, R_OK) != 0)
        return s_why(why, n, FARM_EBADREQ, "%s: %s", path, strerror(errno));
    /* zcert_load reads PATH_secret when it exists (it holds both keys), else PATH. */
    char secret_file[PATH_MAX];
    if (snprintf(secret_file, sizeof secret_file, "%s_secret", path) >= (int)sizeof secret_file)
        return s_why(why, n, FARM_EBADREQ, "%s: path too long", path);
    const char *read_file = access(secret_file, R_OK) == 0 ? secret_file : path;
    zcert_t *c = zcert_load(path);
    if (!c)
        return s_why(why, n, FARM_EBADREQ, "%s is not a CURVE certificate (no curve/public-key of 40 characters)",
                     read_file);
    int rc = 0;
    const uint8_t *sk = zcert_secret_key(c);
    bool has_secret = false;
    for (int i = 0; i < 32; i++)
        has_secret |= sk[i] != 0;
    if (!s_key_text_ok(read_file, "public-key", zcert_public_txt(c)))
        rc = s_why(why, n, FARM_EBADREQ, "%s: curve/public-key is not a valid Z85 key", read_file);
    else if (has_secret && !s_key_text_ok(read_file, "secret-key", zcert_secret_txt(c)))
        rc = s_why(why, n, FARM_EBADREQ, "%s: curve/secret-key is not a valid Z85 key", read_file);
    else if (need_secret && !has_secret)
        rc = s_why(why, n, FARM_EBADREQ,
                   "%s has no secret key: give the certificate whose %s_secret file is beside it, or that file itself",
                   path, path);
    if (rc == 0) {
        snprintf(pub, FARM_CURVE_Z85, "%s", zcert_public_txt(c));
        if (sec)
            snprintf(sec, FARM_CURVE_Z85, "%s", has_secret ? zcert_secret_txt(c) : "");
    }
    zcert_destroy(&c);
    return rc;
}

static bool s_name_ok(const char *s) {
    size_t len = strlen(s);
    if (len < 1 || len > 64 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

/* mkdir -p with mode 0755. Returns 0 or -errno. */
static int s_mkdirs(const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return -ENAMETOOLONG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(p, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int farm_curve_keygen(const char *dir, const char *name, bool force, char pub[FARM_CURVE_Z85], char *why, size_t n) {
    if (!name || !s_name_ok(name))
        return s_why(why, n, FARM_EBADREQ, "the name must be 1-64 characters of [A-Za-z0-9_.-], not '%s'",
                     name ? name : "");
    if (!dir || !*dir)
        dir = ".";
    int rc = s_mkdirs(dir);
    if (rc)
        return s_why(why, n, rc, "cannot create the folder %s: %s", dir, strerror(-rc));
    char path[PATH_MAX], secret[PATH_MAX + 8];
    if (snprintf(path, sizeof path, "%s/%s.cert", dir, name) >= (int)sizeof path)
        return s_why(why, n, FARM_EBADREQ, "%s/%s.cert: path too long", dir, name);
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (!force && (access(path, F_OK) == 0 || access(secret, F_OK) == 0))
        return s_why(why, n, FARM_EBADREQ, "%s already exists (use --force to replace it)",
                     access(path, F_OK) == 0 ? path : secret);
    zcert_t *c = zcert_new();
    if (!c)
        return s_why(why, n, FARM_EINTERNAL, "cannot make a key pair: libzmq has no CURVE support");
    zcert_set_meta(c, "name", "%s", name);
    zcert_set_meta(c, "created-by", "%s", "farm keygen");
    /* Remove a replaced pair first: zconfig rewrites in place and keeps the old mode. */
    if (force && ((unlink(path) != 0 && errno != ENOENT) || (unlink(secret) != 0 && errno != ENOENT))) {
        rc = -errno;
        zcert_destroy(&c);
        return s_why(why, n, rc, "cannot replace %s: %s", path, strerror(-rc));
    }
    errno = 0;
    if (zcert_save(c, path) != 0) {
        int err = errno;
        zcert_destroy(&c);
        return s_why(why, n, err ? -err : FARM_EINTERNAL, "cannot write %s: %s", path,
                     err ? strerror(err) : "zcert_save failed");
    }
    if (chmod(secret, 0600) != 0 || chmod(path, 0644) != 0) {
        rc = -errno;
        zcert_destroy(&c);
        return s_why(why, n, rc, "cannot set the mode of %s: %s", secret, strerror(-rc));
    }
    snprintf(pub, FARM_CURVE_Z85, "%s", zcert_public_txt(c));
    zcert_destroy(&c);
    return 0;
}

/* ---- the connecting side ------------------------------------------------------ */

int farm_curve_keys_load(farm_curve_keys_t *k, const char *server, const char *cert, char *why, size_t n) {
    memset(k, 0, sizeof *k);
    if (!server || !*server)
        return s_why(why, n, FARM_EBADREQ, "no server key given");
    if (s_z85(server, NULL)) {
        snprintf(k->server_key, sizeof k->server_key, "%s", server);
    } else {
        char w[400];
        if (farm_curve_cert_read(server, false, k->server_key, NULL, w, sizeof w) != 0)
            return s_why(why, n, FARM_EBADREQ, "server key: not a 40-character Z85 key, and %s", w);
    }
    char w[400];
    if (farm_curve_cert_read(cert, true, k->public_key, k->secret_key, w, sizeof w) != 0)
        return s_why(why, n, FARM_EBADREQ, "certificate: %s", w);
    return 0;
}

int farm_curve_keys_apply(const farm_curve_keys_t *k, void *s) {
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, k->server_key, 41) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->public_key, 41) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->secret_key, 41) != 0)
        return -errno;
    return 0;
}

static farm_curve_keys_t s_client;
static bool s_client_on;

int farm_curve_client_setup(const char *server, const char *cert, char *why, size_t n) {
    const char *server_from = "--curve-server", *cert_from = "--curve-cert";
    if (!server || !*server) {
        server = getenv("FARM_CURVE_SERVER");
        server_from = "FARM_CURVE_SERVER";
    }
    if (!cert || !*cert) {
        cert = getenv("FARM_CURVE_CERT");
        cert_from = "FARM_CURVE_CERT";
    }
    bool has_server = server && *server, has_cert = cert && *cert;
    s_client_on = false;
    if (!has_server && !has_cert)
        return 0;
    if (!has_cert)
        return s_why(why, n, FARM_EBADREQ,
                     "%s needs --curve-cert FILE (or FARM_CURVE_CERT): this side's own certificate", server_from);
    if (!has_server)
        return s_why(why, n, FARM_EBADREQ,
                     "%s needs --curve-server KEY|FILE (or FARM_CURVE_SERVER): the head's public key", cert_from);
    if (!zmq_has("curve"))
        return s_why(why, n, FARM_EBADREQ, "%s: this libzmq was built without CURVE support", server_from);
    char w[512];
    if (farm_curve_keys_load(&s_client, server, cert, w, sizeof w) != 0)
        return s_why(why, n, FARM_EBADREQ, "%s/%s: %s", server_from, cert_from, w);
    s_client_on = true;
    return 0;
}

const farm_curve_keys_t *farm_curve_client_keys(void) { return s_client_on ? &s_client : NULL; }

int farm_curve_client_apply(void *s) { return s_client_on ? farm_curve_keys_apply(&s_client, s) : 0; }

/* Start a thread with every signal blocked, so that it never takes the
 * program's SIGTERM or SIGINT. Returns 0 or -errno. */
static int s_thread(pthread_t *t, void *(*fn)(void *), void *arg, bool detached) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0 && detached)
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

typedef struct {
    void *pair;          /* the monitor's events */
    char peer[32];       /* client: what the socket talks to; server: its ZAP domain */
    bool server;         /* watching one of the head's CURVE server sockets */
    char component[16];  /* server: the program, for log lines */
} s_watch_t;

/* Log one failed handshake on a head's socket. The ZAP handler logs the
 * refused keys (HANDSHAKE_FAILED_AUTH); what remains are peers that never
 * got as far as showing a key: no CURVE at all, or the wrong server key. */
static void s_watch_server_log(const s_watch_t *w, const char *ep, uint16_t ev, uint32_t val, int repeats) {
    farm_log(FARM_LOG_WARN, w->component,
             "event=curve-refused domain=%s endpoint=%s err=\"handshake failed (%s 0x%x): a peer without CURVE or "
             "with the wrong server key\" repeats=%d",
             w->peer, ep, ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol" : "no detail", (unsigned)val, repeats);
}

static void *s_watch_run(void *arg) {
    s_watch_t *w = arg;
    int64_t last_log = -S_WATCH_LOG_MS;
    int repeats = 0;
    bool refused = false;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, w->pair, 0) < 0) {
            zmq_msg_close(&m);
            if (errno == EINTR)
                continue;
            break; /* ETERM: the context is ending */
        }
        uint16_t ev = 0;
        uint32_t val = 0;
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&ev, zmq_msg_data(&m), 2);
            memcpy(&val, (const char *)zmq_msg_data(&m) + 2, 4);
        }
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        char ep[256] = "";
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, w->pair, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            if (!ep[0]) {
                size_t len = zmq_msg_size(&m) < sizeof ep - 1 ? zmq_msg_size(&m) : sizeof ep - 1;
                memcpy(ep, zmq_msg_data(&m), len);
                ep[len] = '\0';
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == ZMQ_EVENT_MONITOR_STOPPED)
            break;
        int64_t now = farm_mono_ms();
        if (w->server && (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
            if (now - last_log < S_REFUSAL_LOG_MS) {
                repeats++;
                continue;
            }
            s_watch_server_log(w, ep, ev, val, repeats);
            last_log = now;
            repeats = 0;
        } else if (w->server) {
            continue;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            refused = true;
            if (now - last_log < S_WATCH_LOG_MS) {
                repeats++;
                continue;
            }
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                farm_log(FARM_LOG_WARN, "curve",
                         "event=refused peer=%s endpoint=%s status=%u repeats=%d hint=\"the head does not authorise "
                         "this key: add its .cert to the head's CURVE folder\"",
                         w->peer, ep, (unsigned)val, repeats);
            else
                farm_log(FARM_LOG_WARN, "curve",
                         "event=handshake-failed peer=%s endpoint=%s repeats=%d hint=\"wrong server key, or the head "
                         "does not use CURVE\"",
                         w->peer, ep, repeats);
            last_log = now;
            repeats = 0;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && refused) {
            farm_log(FARM_LOG_INFO, "curve", "event=accepted peer=%s endpoint=%s", w->peer, ep);
            refused = false;
            last_log = -S_WATCH_LOG_MS;
            repeats = 0;
        }
    }
    zmq_close(w->pair);
    free(w);
    return NULL;
}

/* Start a thread logging the handshake events of s (see s_watch_run). */
static int s_watch(void *ctx, void *s, const char *peer, const char *component) {
    static atomic_uint seq;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://farm-curve-watch-%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_MONITOR_STOPPED;
    if (zmq_socket_monitor(s, ep, events) != 0)
        return -errno;
    s_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    snprintf(w->peer, sizeof w->peer, "%s", peer ? peer : "head");
    w->server = component != NULL;
    snprintf(w->component, sizeof w->component, "%s", component ? component : "curve");
    w->pair = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0, rc = 0;
    if (!w->pair)
        rc = -errno;
    else if (zmq_setsockopt(w->pair, ZMQ_LINGER, &linger, sizeof linger) != 0 || zmq_connect(w->pair, ep) != 0)
        rc = -errno;
    pthread_t t;
    if (rc == 0)
        rc = s_thread(&t, s_watch_run, w, true);
    if (rc) {
        if (w->pair)
            zmq_close(w->pair);
        free(w);
        (void)zmq_socket_monitor(s, NULL, 0);
    }
    return rc;
}

int farm_curve_client_watch(void *ctx, void *s, const char *peer) { return s_watch(ctx, s, peer, NULL); }

/* ---- the head: key sets --------------------------------------------------------- */

typedef struct {
    const char *sub;       /* "clients" or "workers" */
    char dir[PATH_MAX];    /* DIR/sub */
    uint8_t (*keys)[32];   /* authorised public keys */
    size_t n;              /* entries of keys */
    uint64_t sig;          /* signature of the folder at the last load */
    bool loaded;           /* sig and keys describe the folder */
    int64_t checked_mono;  /* when sig was last computed */
    struct timespec mtime; /* the folder's mtime then */
} s_keyset_t;

typedef struct {
    uint8_t key[32];
    int domain;          /* index into s_domains */
    int64_t logged_mono; /* last line about it */
    int repeats;         /* refusals since that line */
    bool used;
} s_refusal_t;

struct farm_curve_server_t {
    void *ctx;                  /* the program's context (for the watches) */
    void *zap;                  /* REP on inproc://zeromq.zap.01 */
    pthread_t thread;           /* serves zap */
    bool started;               /* thread is running */
    atomic_bool stop;           /* asks the thread to end */
    char component[16];         /* "vent" or "sink", for log lines */
    farm_curve_keys_t self;     /* the server's pair (server_key = public_key) */
    uint8_t self_key[32];       /* its public key, binary */
    s_keyset_t sets[2];         /* clients/, workers/ */
    s_refusal_t refused[S_REFUSALS];
};

static const struct {
    const char *name; /* ZAP domain */
    unsigned sets;    /* bit i: sets[i] authorises */
} s_domains[] = {{FARM_CURVE_CLIENTS, 1}, {FARM_CURVE_WORKERS, 2}, {FARM_CURVE_FEED, 3}};
#define S_NDOMAINS (int)(sizeof s_domains / sizeof s_domains[0])

static uint64_t s_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static bool s_is_cert(const char *name) {
    size_t n = strlen(name);
    return n > 5 && name[0] != '.' && strcmp(name + n - 5, ".cert") == 0;
}

/* The folder's signature, and its mtime into *mtime. A missing folder has
 * signature 1. Sets *err to the errno of a failure to read it (0 if none). */
static uint64_t s_signature(const char *dir, struct timespec *mtime, int *err) {
    struct stat st;
    *err = 0;
    memset(mtime, 0, sizeof *mtime);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *err = errno ? errno : ENOTDIR;
        return 1;
    }
    *mtime = st.st_mtim;
    uint64_t sig = s_fnv(14695981039346656037ull, &st.st_mtim, sizeof st.st_mtim);
    DIR *d = opendir(dir);
    if (!d) {
        *err = errno;
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!s_is_cert(e->d_name))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || stat(path, &st) != 0)
            continue;
        uint64_t h = s_fnv(14695981039346656037ull, e->d_name, strlen(e->d_name));
        h = s_fnv(h, &st.st_ino, sizeof st.st_ino);
        h = s_fnv(h, &st.st_size, sizeof st.st_size);
        h = s_fnv(h, &st.st_mtim, sizeof st.st_mtim);
        sig += h; /* a sum: readdir's order does not matter */
    }
    closedir(d);
    return sig;
}

/* Read every *.cert of the set's folder into its keys. */
static void s_load(farm_curve_server_t *a, s_keyset_t *ks, int err) {
    ks->n = 0;
    if (err) {
        farm_log(FARM_LOG_WARN, a->component, "event=curve-keys domain=%s dir=%s keys=0 err=\"%s\"", ks->sub, ks->dir,
                 strerror(err));
        return;
    }
    DIR *d = opendir(ks->dir);
    if (!d) {
        farm_log(FARM_LOG_WARN, a->component, "event=curve-keys domain=%s dir=%s keys=0 err=\"%s\"", ks->sub, ks->dir,
                 strerror(errno));
        return;
    }
    size_t cap = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!s_is_cert(e->d_name))
            continue;
        if (ks->n == S_KEYS_MAX) {
            farm_log(FARM_LOG_WARN, a->component, "event=curve-keys domain=%s dir=%s err=\"more than %d certificates; "
                     "the rest are ignored\"", ks->sub, ks->dir, S_KEYS_MAX);
            break;
        }
        char path[PATH_MAX], pub[FARM_CURVE_Z85], why[400];
        if (snprintf(path, sizeof path, "%s/%s", ks->dir, e->d_name) >= (int)sizeof path)
            continue;
        if (farm_curve_cert_read(path, false, pub, NULL, why, sizeof why) != 0) {
            farm_log(FARM_LOG_WARN, a->component, "event=curve-bad-cert domain=%s err=\"%s\"", ks->sub, why);
            bad++;
            continue;
        }
        if (ks->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *p = realloc(ks->keys, ncap * sizeof *ks->keys);
            if (!p) {
                farm_log(FARM_LOG_ERROR, a->component, "event=curve-keys domain=%s err=\"out of memory\"", ks->sub);
                break;
            }
            ks->keys = p;
            cap = ncap;
        }
        if (zmq_z85_decode(ks->keys[ks->n], pub))
            ks->n++;
    }
    closedir(d);
    farm_log(FARM_LOG_INFO, a->component, "event=curve-keys domain=%s dir=%s keys=%zu bad=%zu", ks->sub, ks->dir, ks->n,
             bad);
}

/* Bring a set up to date: see the top of the file for when it looks. */
static void s_refresh(farm_curve_server_t *a, s_keyset_t *ks, bool unknown_key) {
    int64_t now = farm_mono_ms();
    if (ks->loaded && now - ks->checked_mono < S_CHECK_MS) {
        struct stat st;
        if (!unknown_key || now - ks->checked_mono < S_UNKNOWN_CHECK_MS)
            return;
        if (stat(ks->dir, &st) == 0 && st.st_mtim.tv_sec == ks->mtime.tv_sec &&
            st.st_mtim.tv_nsec == ks->mtime.tv_nsec)
            return;
    }
    int err;
    struct timespec mtime;
    uint64_t sig = s_signature(ks->dir, &mtime, &err);
    ks->checked_mono = now;
    ks->mtime = mtime;
    if (ks->loaded && sig == ks->sig)
        return;
    s_load(a, ks, err);
    ks->sig = sig;
    ks->loaded = true;
}

static bool s_has(const s_keyset_t *ks, const uint8_t key[32]) {
    for (size_t i = 0; i < ks->n; i++)
        if (memcmp(ks->keys[i], key, 32) == 0)
            return true;
    return false;
}

/* Is key allowed in domain d? Refreshes the sets it needs. */
static bool s_allowed(farm_curve_server_t *a, int d, const uint8_t key[32]) {
    if (memcmp(key, a->self_key, 32) == 0)
        return true;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) {
            if (!(s_domains[d].sets & (1u << i)))
                continue;
            s_refresh(a, &a->sets[i], pass == 1);
            if (s_has(&a->sets[i], key))
                return true;
        }
    }
    return false;
}

/* Log a refusal unless this key was logged for this domain in the last 10 s. */
static void s_log_refusal(farm_curve_server_t *a, int d, const char *domain, const char *address,
                          const uint8_t *key, bool has_key) {
    int64_t now = farm_mono_ms();
    uint8_t k[32] = {0};
    if (has_key)
        memcpy(k, key, 32);
    s_refusal_t *slot = NULL, *oldest = &a->refused[0];
    for (int i = 0; i < S_REFUSALS; i++) {
        s_refusal_t *r = &a->refused[i];
        if (r->used && r->domain == d && memcmp(r->key, k, 32) == 0) {
            slot = r;
            break;
        }
        if (!r->used || (oldest->used && r->logged_mono < oldest->logged_mono))
            oldest = r;
    }
    if (slot && now - slot->logged_mono < S_REFUSAL_LOG_MS) {
        slot->repeats++;
        return;
    }
    int repeats = slot ? slot->repeats : 0;
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof *slot);
        memcpy(slot->key, k, 32);
        slot->domain = d;
        slot->used = true;
    }
    slot->logged_mono = now;
    slot->repeats = 0;
    char z[FARM_CURVE_Z85] = "-";
    if (has_key)
        zmq_z85_encode(z, k, 32);
    farm_log(FARM_LOG_WARN, a->component, "event=curve-refused domain=%s address=%s key=%s repeats=%d", domain,
             address, z, repeats);
}

/* ---- the head: the ZAP handler ----------------------------------------------------- */

/* A frame's text (cut to n-1 bytes, control bytes as '?'). */
static void s_text(char *dst, size_t n, zmq_msg_t *m) {
    size_t len = zmq_msg_size(m) < n - 1 ? zmq_msg_size(m) : n - 1;
    const char *p = zmq_msg_data(m);
    for (size_t i = 0; i < len; i++)
        dst[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    dst[len] = '\0';
}

static bool s_frame_is(zmq_msg_t *m, const char *s) {
    return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

/* Answer one ZAP request (RFC 27): version, request id, domain, address,
 * identity, mechanism, credentials... -> version, request id, status code,
 * status text, user id, metadata. */
static void s_zap_one(farm_curve_server_t *a) {
    zmq_msg_t f[S_ZAP_FRAMES];
    int nf = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->zap, 0) < 0) {
            zmq_msg_close(&m);
            if (errno == EINTR)
                continue;
            for (int i = 0; i < nf; i++)
                zmq_msg_close(&f[i]);
            return;
        }
        more = zmq_msg_more(&m);
        if (nf < S_ZAP_FRAMES)
            f[nf++] = m;
        else
            zmq_msg_close(&m);
    }
    const char *status = "400", *text = "not authorised";
    char user[FARM_CURVE_Z85] = "";
    char domain[32] = "?", address[64] = "?";
    int d = -1;
    if (nf >= 3)
        s_text(domain, sizeof domain, &f[2]);
    if (nf >= 4)
        s_text(address, sizeof address, &f[3]);
    for (int i = 0; nf >= 3 && i < S_NDOMAINS; i++)
        if (s_frame_is(&f[2], s_domains[i].name))
            d = i;
    bool has_key = nf >= 7 && zmq_msg_size(&f[6]) == 32;
    if (nf < 6 || !s_frame_is(&f[0], "1.0")) {
        status = "500";
        text = "malformed ZAP request";
    } else if (!s_frame_is(&f[5], "CURVE")) {
        text = "this farm accepts CURVE only";
        farm_log(FARM_LOG_WARN, a->component, "event=curve-refused domain=%s address=%s err=\"not CURVE\"", domain,
                 address);
    } else if (d < 0) {
        text = "unknown ZAP domain";
        farm_log(FARM_LOG_WARN, a->component, "event=curve-refused domain=%s address=%s err=\"unknown domain\"",
                 domain, address);
    } else if (has_key && s_allowed(a, d, zmq_msg_data(&f[6]))) {
        status = "200";
        text = "OK";
        zmq_z85_encode(user, zmq_msg_data(&f[6]), 32);
        farm_log(FARM_LOG_DEBUG, a->component, "event=curve-accepted domain=%s address=%s key=%s", domain, address,
                 user);
    } else {
        s_log_refusal(a, d, domain, address, has_key ? zmq_msg_data(&f[6]) : NULL, has_key);
    }
    const void *rid = nf >= 2 ? zmq_msg_data(&f[1]) : "";
    size_t rid_len = nf >= 2 ? zmq_msg_size(&f[1]) : 0;
    if (zmq_send(a->zap, "1.0", 3, ZMQ_SNDMORE) < 0 || zmq_send(a->zap, rid, rid_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(a->zap, status, 3, ZMQ_SNDMORE) < 0 || zmq_send(a->zap, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(a->zap, user, strlen(user), ZMQ_SNDMORE) < 0 || zmq_send(a->zap, "", 0, 0) < 0)
        farm_log(FARM_LOG_ERROR, a->component, "event=zap-reply err=\"%s\"", zmq_strerror(errno));
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

static void *s_zap_run(void *arg) {
    farm_curve_server_t *a = arg;
    while (!atomic_load(&a->stop)) {
        zmq_pollitem_t it = {a->zap, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, S_POLL_MS);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM */
        }
        if (rc > 0)
            s_zap_one(a);
        else /* idle: keep the sets fresh, so a change is logged even before anyone knocks */
            for (int i = 0; i < 2; i++)
                s_refresh(a, &a->sets[i], false);
    }
    zmq_close(a->zap);
    a->zap = NULL;
    return NULL;
}

farm_curve_server_t *farm_curve_server_new(void *ctx, const char *dir, const char *component, char *why, size_t n) {
    if (!dir || !*dir) {
        s_why(why, n, FARM_EBADREQ, "--curve needs a folder");
        return NULL;
    }
    if (!zmq_has("curve")) {
        s_why(why, n, FARM_EINTERNAL, "--curve: this libzmq was built without CURVE support");
        return NULL;
    }
    farm_curve_server_t *a = calloc(1, sizeof *a);
    if (!a) {
        s_why(why, n, -ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(a->component, sizeof a->component, "%s", component ? component : "curve");
    char path[PATH_MAX], w[512];
    struct stat st;
    if (stat(dir, &st) != 0) {
        s_why(why, n, FARM_EBADREQ, "--curve %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        s_why(why, n, FARM_EBADREQ, "--curve %s: not a folder", dir);
        goto fail;
    }
    if (snprintf(path, sizeof path, "%s/server.cert", dir) >= (int)sizeof path) {
        s_why(why, n, FARM_EBADREQ, "--curve %s: path too long", dir);
        goto fail;
    }
    if (farm_curve_cert_read(path, true, a->self.public_key, a->self.secret_key, w, sizeof w) != 0) {
        s_why(why, n, FARM_EBADREQ, "--curve %s: the head's certificate: %s (make it with `farm keygen server --dir %s`)",
              dir, w, dir);
        goto fail;
    }
    memcpy(a->self.server_key, a->self.public_key, sizeof a->self.server_key);
    if (!zmq_z85_decode(a->self_key, a->self.public_key)) {
        s_why(why, n, FARM_EBADREQ, "--curve %s: bad public key", dir);
        goto fail;
    }
    const char *subs[2] = {"clients", "workers"};
    for (int i = 0; i < 2; i++) {
        a->sets[i].sub = subs[i];
        if (snprintf(a->sets[i].dir, sizeof a->sets[i].dir, "%s/%s", dir, subs[i]) >= (int)sizeof a->sets[i].dir) {
            s_why(why, n, FARM_EBADREQ, "--curve %s: path too long", dir);
            goto fail;
        }
        s_refresh(a, &a->sets[i], false);
    }
    a->ctx = ctx;
    a->zap = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    if (!a->zap || zmq_setsockopt(a->zap, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(a->zap, S_ZAP_ENDPOINT) != 0) {
        s_why(why, n, -errno, "cannot start the ZAP handler: %s", zmq_strerror(errno));
        goto fail;
    }
    atomic_init(&a->stop, false);
    int rc = s_thread(&a->thread, s_zap_run, a, false);
    if (rc) {
        s_why(why, n, rc, "cannot start the ZAP handler thread: %s", strerror(-rc));
        goto fail;
    }
    a->started = true;
    farm_log(FARM_LOG_INFO, a->component, "event=curve-on dir=%s server_key=%s", dir, a->self.public_key);
    return a;
fail:
    farm_curve_server_destroy(&a);
    return NULL;
}

void farm_curve_server_destroy(farm_curve_server_t **p) {
    if (!p || !*p)
        return;
    farm_curve_server_t *a = *p;
    if (a->started) {
        atomic_store(&a->stop, true);
        pthread_join(a->thread, NULL);
    } else if (a->zap) {
        zmq_close(a->zap);
    }
    for (int i = 0; i < 2; i++)
        free(a->sets[i].keys);
    /* The secret key is no business of freed memory. */
    memset(a->self.secret_key, 0, sizeof a->self.secret_key);
    free(a);
    *p = NULL;
}

int farm_curve_server_apply(const farm_curve_server_t *a, void *s, const char *domain) {
    bool known = false;
    for (int i = 0; i < S_NDOMAINS; i++)
        known |= domain && strcmp(domain, s_domains[i].name) == 0;
    if (!known)
        return -EINVAL;
    int one = 1;
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, a->self.secret_key, 41) != 0 ||
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0) {
        int err = errno;
        farm_log(FARM_LOG_ERROR, a->component, "op=curve-server domain=%s err=\"%s\"", domain, zmq_strerror(err));
        return -err;
    }
    /* Peers that fail before ZAP sees a key are logged from the socket's events. */
    int rc = s_watch(a->ctx, s, domain, a->component);
    if (rc)
        farm_log(FARM_LOG_WARN, a->component, "op=curve-watch domain=%s err=\"%s\"", domain, zmq_strerror(-rc));
    return 0;
}

const farm_curve_keys_t *farm_curve_server_self(const farm_curve_server_t *a) { return &a->self; }
