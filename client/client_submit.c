/* client_submit: `farm submit`, the one command that creates work.
 *
 * Three ways to say what to run, exactly one per call: a command line
 * after "--" (one exec task), --type with optional --args JSON (one task of
 * any handler), or --file with one JSON task spec per line (one job of many
 * tasks). Everything the farm would reject for its shape is checked here
 * first (ranges, type names, JSON), so a typo costs no round trip and
 * exits 2. The batch is not split: one file is one job, and a file over
 * the server's max_batch gets the server's error.
 *
 * Every submit carries an idempotency key (the user's --key, else a fresh
 * random one), because this client resends: on a lost reply (lazy pirate)
 * and on `busy`, with back-off. With a key a resend can never create the
 * job twice; the server answers the resend with the first submit's ids.
 */
#include "client.h"
#include "farm_config.h"
#include "farm_err.h"
#include "farm_json.h"
#include "farm_proto.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define S_BUSY_TRIES 10
#define S_BUSY_FIRST_MS 200
#define S_BUSY_MAX_MS 5000

/* A key unique to this invocation: host, pid, time and 64 random bits. */
static void s_make_key(char *buf, size_t n) {
    char host[64] = "host";
    uint64_t rnd = 0;
    if (farm_hostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "host");
    host[40] = '\0';
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint64_t)farm_mono_us() ^ ((uint64_t)getpid() << 32);
    snprintf(buf, n, "cli-%s-%ld-%" PRId64 "-%016" PRIx64, host, (long)getpid(), farm_now_ms(), rnd);
}

/* Read all of path ("-": stdin) into a malloc'd buffer of at most max
 * bytes. Returns 0, or CLI_USAGE after a message. */
static int s_slurp(const cli_t *cli, const char *path, int64_t max, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return cli_usage(cli, "--file %s: %s", path, strerror(errno));
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            if (cap >= (size_t)max) {
                rc = cli_usage(cli, "--file %s: larger than %" PRId64 " bytes (max-frame)", path, max);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = cli_usage(cli, "--file %s: %s", path, strerror(errno ? errno : EIO));
            break;
        }
    }
    if (!buf && !rc)
        rc = cli_usage(cli, "--file %s: out of memory", path);
    if (f != stdin)
        fclose(f);
    if (rc || !buf) {
        free(buf);
        return rc ? rc : CLI_USAGE;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Line [*pos, end of line) of text, trimmed; advances *pos past it. */
static bool s_line(const char *text, size_t len, size_t *pos, const char **l, size_t *ll) {
    if (*pos >= len)
        return false;
    size_t s = *pos, e = s;
    while (e < len && text[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    while (s < e && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r'))
        s++;
    while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r'))
        e--;
    *l = text + s;
    *ll = e - s;
    return true;
}

/* Pack the lines of text as an array of task maps. Returns 0 or CLI_USAGE. */
static int s_pack_file(const cli_t *cli, const char *path, const char *text, size_t len, msgpack_packer *pk) {
    size_t pos = 0, count = 0, ll;
    const char *l;
    while (s_line(text, len, &pos, &l, &ll))
        count += ll > 0;
    if (count == 0)
        return cli_usage(cli, "--file %s: no tasks (one JSON object per line)", path);
    if (count > UINT32_MAX)
        return cli_usage(cli, "--file %s: too many lines", path);
    msgpack_pack_array(pk, count);
    pos = 0;
    for (size_t lineno = 1; s_line(text, len, &pos, &l, &ll); lineno++) {
        if (ll == 0)
            continue;
        const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
        if (l[0] != '{')
            return cli_usage(cli, "%s line %zu: a task must be a JSON object {\"type\": ..., \"args\": ...}", name,
                             lineno);
        char err[256];
        int rc = farm_json_to_msgpack(l, ll, pk, err, sizeof err);
        if (rc) {
            /* The text is one line, so the parser's line number is always 1. */
            const char *pre = "invalid JSON at line 1 column ";
            if (strncmp(err, pre, strlen(pre)) == 0)
                return cli_usage(cli, "%s line %zu: invalid JSON at column %s", name, lineno, err + strlen(pre));
            return cli_usage(cli, "%s line %zu: %s", name, lineno, err);
        }
    }
    return 0;
}

/* "301..303", "301", or "301, 305, 307, ..." */
static void s_ids(char *buf, size_t n, const int64_t *ids, size_t k) {
    bool run = true;
    for (size_t i = 1; i < k; i++)
        run = run && ids[i] == ids[i - 1] + 1;
    if (k == 1 || (run && k > 1)) {
        if (k == 1)
            snprintf(buf, n, "%" PRId64, ids[0]);
        else
            snprintf(buf, n, "%" PRId64 "..%" PRId64, ids[0], ids[k - 1]);
        return;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < k && i < 5 && o < n; i++) {
        int w = snprintf(buf + o, n - o, "%s%" PRId64, i ? ", " : "", ids[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (k > 5 && o < n)
        snprintf(buf + o, n - o, ", ...");
}

typedef struct {
    const char *name, *key, *type, *args, *file;
    cli_int_t priority, max_attempts, timeout_ms, delay_ms, poll_ms, wait_ms;
    bool wait;
} s_opts_t;

/* The per-task defaults given as flags, as map entries. */
static size_t s_ndefaults(const s_opts_t *o) {
    return (size_t)o->priority.set + o->max_attempts.set + o->timeout_ms.set + o->delay_ms.set;
}

static void s_pack_defaults(msgpack_packer *pk, const s_opts_t *o) {
    if (o->priority.set)
        farm_pack_kv_int(pk, "priority", o->priority.v);
    if (o->max_attempts.set)
        farm_pack_kv_int(pk, "max_attempts", o->max_attempts.v);
    if (o->timeout_ms.set)
        farm_pack_kv_int(pk, "timeout_ms", o->timeout_ms.v);
    if (o->delay_ms.set)
        farm_pack_kv_int(pk, "delay_ms", o->delay_ms.v);
}

/* Pack the request of a single task (a command after "--", or --type).
 * Returns 0 or CLI_USAGE. */
static int s_pack_one(const cli_t *cli, const s_opts_t *o, char **rest, int nrest, const char *key, cli_req_t *q) {
    cli_req_init(q, 4 + (o->name != NULL), "submit"); /* op v key tasks [name] */
    farm_pack_kv_str(&q->pk, "key", key);
    if (o->name)
        farm_pack_kv_str(&q->pk, "name", o->name);
    farm_pack_str(&q->pk, "tasks");
    msgpack_pack_array(&q->pk, 1);
    bool exec = nrest > 0;
    const char *type = exec ? "exec" : o->type;
    msgpack_pack_map(&q->pk, 1 + (exec || o->args) + s_ndefaults(o));
    farm_pack_kv_str(&q->pk, "type", type);
    if (exec) {
        farm_pack_str(&q->pk, "args");
        msgpack_pack_map(&q->pk, 1);
        farm_pack_str(&q->pk, "argv");
        msgpack_pack_array(&q->pk, (size_t)nrest);
        for (int i = 0; i < nrest; i++)
            farm_pack_str(&q->pk, rest[i]);
    } else if (o->args) {
        farm_pack_str(&q->pk, "args");
        char err[256];
        if (farm_json_to_msgpack(o->args, strlen(o->args), &q->pk, err, sizeof err) != 0)
            return cli_usage(cli, "--args: %s", err);
    }
    s_pack_defaults(&q->pk, o);
    return 0;
}

int cli_cmd_submit(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] -- CMD [ARG...]  |  --type T [--args JSON]  |  --file FILE",
        "Submit one job: a command to run, one task of a handler, or a file of tasks.",
        "  farm submit -- convert in.png -resize 50% out.png\n"
        "  farm submit --type sleep --args '{\"ms\": 100}'\n"
        "  farm submit --file tasks.jsonl    (one JSON task per line: {\"type\": \"exec\",\n"
        "                                    \"args\": {\"argv\": [...]}, \"priority\": 5}; - for stdin)\n"
        "The task flags (--priority ...) apply to the one task, or are the defaults of a\n"
        "file's tasks. A busy farm is retried with back-off; every submit carries an\n"
        "idempotency key, so a retry never submits twice.\n"
        "Prints \"job J: N tasks (IDS)\"; with --json the reply (and with --wait, then the\n"
        "final status reply).\n"};
    s_opts_t o = {0};
    o.poll_ms.v = 1000;
    const cli_opt_t opts[] = {
        {"name", CLI_OPT_STR, &o.name, 0, 0, "N", "name of the job"},
        {"key", CLI_OPT_STR, &o.key, 0, 0, "K", "idempotency key: a second submit with K creates nothing"},
        {"priority", CLI_OPT_INT, &o.priority, -100, 100, "P", "-100..100, higher runs first (default 0)"},
        {"max-attempts", CLI_OPT_INT, &o.max_attempts, 1, 100, "N", "attempts before failing (default 3)"},
        {"timeout-ms", CLI_OPT_INT, &o.timeout_ms, 0, INT64_MAX, "MS", "time limit of one attempt (0: none)"},
        {"delay-ms", CLI_OPT_INT, &o.delay_ms, 0, INT64_MAX, "MS", "do not start before this delay"},
        {"type", CLI_OPT_STR, &o.type, 0, 0, "T", "submit a task of handler T instead of a command"},
        {"args", CLI_OPT_STR, &o.args, 0, 0, "JSON", "the input of a --type task"},
        {"file", CLI_OPT_STR, &o.file, 0, 0, "FILE", "submit one task per line of FILE (- for stdin)"},
        {"wait", CLI_OPT_FLAG, &o.wait, 0, 0, NULL, "then wait for the job like `farm wait --job`"},
        {"poll-ms", CLI_OPT_INT, &o.poll_ms, 10, 3600000, "MS", "with --wait: ask at least this often (default 1000)"},
        {"timeout-wait", CLI_OPT_INT, &o.wait_ms, 0, INT64_MAX, "MS", "with --wait: give up after MS (0: never)"},
    };
    char *pos[argc];
    char **rest;
    int npos, nrest;
    int rc = cli_parse(cli, &help, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &npos, &rest, &nrest);
    if (rc != CLI_CONTINUE)
        return rc;

    farm_limits_t lim;
    farm_limits_default(&lim);
    if (npos)
        return cli_usage(cli, "unexpected '%s': put the command after '--' (farm submit -- CMD ARGS...)", pos[0]);
    if (rest && nrest == 0)
        return cli_usage(cli, "no command after '--'");
    int ways = (nrest > 0) + (o.file != NULL) + (o.type != NULL && !(nrest > 0 && strcmp(o.type, "exec") == 0));
    if (ways == 0)
        return cli_usage(cli, "nothing to submit: give -- CMD ARGS..., --type T [--args JSON] or --file FILE");
    if (ways > 1)
        return cli_usage(cli, "give only one of -- CMD ARGS..., --type T or --file FILE");
    if (o.args && !o.type)
        return cli_usage(cli, "--args needs --type (a command's arguments go after '--')");
    if (o.type && !farm_type_valid((farm_str_t){o.type, (uint32_t)strlen(o.type)}))
        return cli_usage(cli, "--type: '%s' is not a task type (1-64 of [a-z0-9_.-])", o.type);
    if (o.name && (int64_t)strlen(o.name) > lim.max_name)
        return cli_usage(cli, "--name: over %" PRId64 " bytes", lim.max_name);
    if (o.key && (!*o.key || (int64_t)strlen(o.key) > lim.max_key))
        return cli_usage(cli, "--key: must be 1..%" PRId64 " bytes", lim.max_key);
    if (!o.wait && (o.poll_ms.set || o.wait_ms.set))
        return cli_usage(cli, "--poll-ms and --timeout-wait go with --wait");

    char key[160];
    if (o.key)
        snprintf(key, sizeof key, "%s", o.key);
    else
        s_make_key(key, sizeof key);

    cli_req_t q;
    if (o.file) {
        char *text = NULL;
        size_t len = 0;
        if ((rc = s_slurp(cli, o.file, lim.max_frame, &text, &len)) != 0)
            return rc;
        cli_req_init(&q, 4 + (o.name != NULL) + s_ndefaults(&o), "submit");
        farm_pack_kv_str(&q.pk, "key", key);
        if (o.name)
            farm_pack_kv_str(&q.pk, "name", o.name);
        s_pack_defaults(&q.pk, &o);
        farm_pack_str(&q.pk, "tasks");
        rc = s_pack_file(cli, o.file, text, len, &q.pk);
        free(text);
    } else {
        rc = s_pack_one(cli, &o, rest, nrest, key, &q);
    }
    if (rc) {
        cli_req_free(&q);
        return rc;
    }

    const msgpack_object *reply;
    farm_error_t e;
    int64_t delay = S_BUSY_FIRST_MS;
    for (int attempt = 1;; attempt++) {
        rc = cli_send(cli, &q, &reply, &e);
        if (rc != FARM_EBUSY || attempt == S_BUSY_TRIES)
            break;
        fprintf(stderr, "farm: farm is busy, retrying in %" PRId64 " ms\n", delay);
        cli_sleep_ms(delay);
        delay = delay * 2 > S_BUSY_MAX_MS ? S_BUSY_MAX_MS : delay * 2;
    }
    cli_req_free(&q);
    if (rc)
        return cli_report(cli, rc, &e, reply);

    cli_rd_t r = {0};
    int64_t job = 0;
    bool dup = false;
    cli_rd_int(&r, reply, "job", true, &job);
    const msgpack_object *tasks = cli_rd_array(&r, reply, "tasks", true);
    cli_rd_bool(&r, reply, "duplicate", false, &dup);
    size_t k = tasks ? tasks->via.array.size : 0;
    int64_t *ids = calloc(k ? k : 1, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    for (size_t i = 0; i < k && !r.bad; i++) {
        const msgpack_object *t = &tasks->via.array.ptr[i];
        if (t->type == MSGPACK_OBJECT_POSITIVE_INTEGER && t->via.u64 <= (uint64_t)INT64_MAX)
            ids[i] = (int64_t)t->via.u64;
        else
            cli_rd_fail(&r, "\"tasks\" holds a value that is not a task id");
    }
    if (!r.bad && k == 0)
        cli_rd_fail(&r, "\"tasks\" is empty");
    if (r.bad) {
        free(ids);
        return cli_malformed(r.why);
    }
    if (cli->json) {
        rc = cli_print_json(reply);
    } else {
        char list[256];
        s_ids(list, sizeof list, ids, k);
        /* A duplicate under our own random key is just our resend arriving
         * twice; only a user's key makes "duplicate" news. */
        printf("job %" PRId64 ": %zu task%s (%s)%s\n", job, k, k == 1 ? "" : "s", list,
               dup && o.key ? ", duplicate: already submitted with this key" : "");
        rc = CLI_OK;
    }
    free(ids);
    if (rc != CLI_OK || !o.wait)
        return rc;
    if (fflush(stdout) != 0)
        return CLI_FARM;
    return cli_wait(cli, job, true, o.poll_ms.v, o.wait_ms.v);
}
