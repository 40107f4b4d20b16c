/* worker_handlers: noop, sleep and exec (see worker_handlers.h).
 *
 * Every handler treats its args as hostile: they are decoded with the
 * farm_msg field tables like any message, each element of a nested value is
 * checked before use, and an error names the field at fault ("exec:
 * args.env.HOME must be a string without NUL bytes"). Nothing here knows
 * about slots or sockets; stopping, progress and errors go through the
 * farm_plugin.h context only, so these read as examples for plugin authors.
 */
#include "worker_handlers.h"

#include "farm_log.h"
#include "farm_msg.h"
#include "farm_time.h"
#include "handler_interest.h"
#include "handler_text.h"
#include "worker_exec.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SLEEP_MAX_MS 86400000
#define S_SLEEP_PROGRESS_MIN_MS 200 /* shorter sleeps report no progress */
#define S_EXEC_ARGV_MAX 65536       /* entries of argv */
#define S_EXEC_ENV_MAX 4096         /* entries of env */
#define S_EXEC_CWD_MAX 4096         /* bytes of cwd (PATH_MAX) */

/* ---- noop --------------------------------------------------------------- */

static int s_noop(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx;
    (void)args;
    return msgpack_pack_nil(result) == 0 ? 0 : -1;
}

/* ---- sleep -------------------------------------------------------------- */

typedef struct {
    int64_t ms; /* how long to sleep */
} s_sleep_args_t;

static const farm_field_t s_sleep_fields[] = {
    {"ms", FARM_T_INT, false, 0, S_SLEEP_MAX_MS, 0, offsetof(s_sleep_args_t, ms), NULL},
};

/* Wait until mono time `until` or a stop, whichever is first. Returns 0, or
 * -errno when poll fails. */
static int s_wait(farm_task_ctx_t *ctx, int64_t until) {
    int64_t deadline = farm_task_deadline_ms(ctx);
    if (deadline > 0 && deadline < until)
        until = deadline;
    struct pollfd pfd = {.fd = farm_task_stop_fd(ctx), .events = POLLIN};
    for (;;) {
        int64_t left = until - farm_mono_ms();
        if (left <= 0)
            return 0;
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int s_sleep(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    s_sleep_args_t a = {0};
    farm_error_t e;
    if (args->type != MSGPACK_OBJECT_NIL &&
        farm_msg_decode(s_sleep_fields, 1, args, &a, NULL, "args", &e) != 0) {
        farm_task_fail(ctx, "sleep: args.ms must be an integer 0..%d", S_SLEEP_MAX_MS);
        return -1;
    }
    int64_t t0 = farm_mono_ms();
    int64_t end = t0 + a.ms;
    bool report = a.ms >= S_SLEEP_PROGRESS_MIN_MS;
    int next = 10; /* the next percentage to report */
    for (;;) {
        if (farm_task_stopping(ctx)) {
            farm_task_fail(ctx, "sleep: stopped after %" PRId64 " ms", farm_mono_ms() - t0);
            return -1;
        }
        int64_t now = farm_mono_ms();
        if (report)
            for (; next < 100 && now >= t0 + a.ms * next / 100; next += 10)
                farm_task_progress(ctx, next, NULL);
        if (now >= end)
            break;
        int64_t until = report && next < 100 ? t0 + a.ms * next / 100 : end;
        int rc = s_wait(ctx, until);
        if (rc < 0) {
            farm_task_fail(ctx, "sleep: poll: %s", strerror(-rc));
            return -1;
        }
    }
    if (report)
        farm_task_progress(ctx, 100, NULL);
    msgpack_pack_map(result, 1);
    farm_pack_kv_int(result, "slept_ms", farm_mono_ms() - t0);
    return 0;
}

/* ---- exec --------------------------------------------------------------- */

typedef struct {
    const msgpack_object *argv; /* array of str, required */
    const msgpack_object *env;  /* map str -> str */
    farm_str_t cwd;             /* working directory */
    farm_str_t in;              /* stdin bytes */
} s_exec_args_t;

static const farm_field_t s_exec_fields[] = {
    {"argv", FARM_T_ARRAY, true, 1, S_EXEC_ARGV_MAX, 0, offsetof(s_exec_args_t, argv), NULL},
    {"env", FARM_T_MAP, false, 0, S_EXEC_ENV_MAX, 0, offsetof(s_exec_args_t, env), NULL},
    {"cwd", FARM_T_STR, false, 1, S_EXEC_CWD_MAX, 0, offsetof(s_exec_args_t, cwd), NULL},
    {"stdin", FARM_T_BIN, false, 0, 0, 0, offsetof(s_exec_args_t, in), NULL},
};

/* Everything a run allocates, freed at once. */
typedef struct {
    char **argv;    /* NULL terminated, each malloc'd */
    char **env;     /* NULL terminated "KEY=VALUE", each malloc'd */
    char *cwd;      /* malloc'd or NULL */
} s_exec_run_t;

static void s_strv_free(char **v) {
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void s_exec_run_free(s_exec_run_t *r) {
    s_strv_free(r->argv);
    s_strv_free(r->env);
    free(r->cwd);
}

/* True when o is a string with no NUL byte, so it survives as a C string. */
static bool s_plain_str(const msgpack_object *o) {
    return o->type == MSGPACK_OBJECT_STR && memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL;
}

static char *s_dup(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static char *s_env_entry(const char *k, size_t kn, const char *v, size_t vn) {
    char *s = malloc(kn + vn + 2);
    if (s) {
        memcpy(s, k, kn);
        s[kn] = '=';
        if (vn)
            memcpy(s + kn + 1, v, vn);
        s[kn + 1 + vn] = '\0';
    }
    return s;
}

/* Turn decoded args into the C strings worker_exec wants. Returns 0, or -1
 * with the failure set on ctx. */
static int s_exec_prepare(farm_task_ctx_t *ctx, const s_exec_args_t *a, s_exec_run_t *r) {
    uint32_t argc = a->argv->via.array.size;
    uint32_t envc = a->env ? a->env->via.map.size : 0;
    r->argv = calloc((size_t)argc + 1, sizeof *r->argv);
    r->env = calloc((size_t)envc + 4, sizeof *r->env);
    if (!r->argv || !r->env)
        goto nomem;
    for (uint32_t i = 0; i < argc; i++) {
        const msgpack_object *o = &a->argv->via.array.ptr[i];
        if (!s_plain_str(o) || (i == 0 && o->via.str.size == 0)) {
            farm_task_fail(ctx, "exec: args.argv[%" PRIu32 "] must be a %sstring without NUL bytes", i,
                           i == 0 ? "non-empty " : "");
            return -1;
        }
        if (!(r->argv[i] = s_dup(o->via.str.ptr, o->via.str.size)))
            goto nomem;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < envc; i++) {
        const msgpack_object *key = &a->env->via.map.ptr[i].key;
        const msgpack_object *val = &a->env->via.map.ptr[i].val;
        if (!s_plain_str(key) || key->via.str.size == 0 || memchr(key->via.str.ptr, '=', key->via.str.size)) {
            farm_task_fail(ctx, "exec: args.env[%" PRIu32 "]: names must be non-empty strings without '=' or NUL",
                           i);
            return -1;
        }
        if (!s_plain_str(val)) {
            farm_task_fail(ctx, "exec: args.env.%.*s must be a string without NUL bytes",
                           (int)(key->via.str.size > 64 ? 64 : key->via.str.size), key->via.str.ptr);
            return -1;
        }
        if (!(r->env[k++] = s_env_entry(key->via.str.ptr, key->via.str.size, val->via.str.ptr, val->via.str.size)))
            goto nomem;
    }
    /* The farm's own variables come last, so a task's env cannot fake them. */
    char buf[64];
    snprintf(buf, sizeof buf, "FARM_TASK_ID=%" PRId64, farm_task_id(ctx));
    if (!(r->env[k++] = s_dup(buf, strlen(buf))))
        goto nomem;
    snprintf(buf, sizeof buf, "FARM_JOB_ID=%" PRId64, farm_task_job(ctx));
    if (!(r->env[k++] = s_dup(buf, strlen(buf))))
        goto nomem;
    snprintf(buf, sizeof buf, "FARM_ATTEMPT=%" PRId64, farm_task_attempt(ctx));
    if (!(r->env[k++] = s_dup(buf, strlen(buf))))
        goto nomem;
    if (a->cwd.ptr) {
        if (memchr(a->cwd.ptr, '\0', a->cwd.len)) {
            farm_task_fail(ctx, "exec: args.cwd must be a string without NUL bytes");
            return -1;
        }
        if (!(r->cwd = s_dup(a->cwd.ptr, a->cwd.len)))
            goto nomem;
    }
    return 0;
nomem:
    farm_task_fail(ctx, "exec: worker out of memory");
    return -1;
}

static void s_exec_progress(void *ud, int pct, const char *msg) { farm_task_progress(ud, pct, msg); }

static int s_exec(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    const worker_handlers_cfg_t *cfg = farm_task_handler_data(ctx);
    s_exec_args_t a;
    farm_error_t e;
    if (args->type == MSGPACK_OBJECT_NIL) {
        farm_task_fail(ctx, "exec: args must be a map with argv");
        return -1;
    }
    if (farm_msg_decode(s_exec_fields, sizeof s_exec_fields / sizeof s_exec_fields[0], args, &a, NULL, "args",
                        &e) != 0) {
        farm_task_fail(ctx, "exec: %s", e.message);
        return -1;
    }
    s_exec_run_t run = {0};
    if (s_exec_prepare(ctx, &a, &run) != 0) {
        s_exec_run_free(&run);
        return -1;
    }
    if (!worker_allow_check(&cfg->exec_allow, run.argv[0])) {
        farm_task_fail(ctx, "exec: program '%.200s' is not in this worker's allow-list", run.argv[0]);
        s_exec_run_free(&run);
        return -1;
    }
    worker_allow_root_warning();
    int64_t timeout = 0, deadline = farm_task_deadline_ms(ctx);
    if (deadline > 0) {
        timeout = deadline - farm_mono_ms();
        if (timeout < 1)
            timeout = 1;
    }
    worker_exec_opts_t o = {
        .argv = run.argv,
        .env_extra = run.env,
        .cwd = run.cwd,
        .stdin_data = a.in.len ? a.in.ptr : NULL,
        .stdin_len = a.in.len,
        .out_limit = (size_t)cfg->max_output,
        .timeout_ms = timeout,
        .kill_grace_ms = cfg->kill_grace_ms > 0 ? cfg->kill_grace_ms : 1, /* worker_exec reads 0 as 2000 */
        .cancel_fd = farm_task_stop_fd(ctx),
        .on_progress = s_exec_progress,
        .ud = ctx,
    };
    worker_exec_result_t r;
    int rc = worker_exec_run(&o, &r);
    s_exec_run_free(&run);
    if (rc < 0) {
        farm_task_fail(ctx, "%s", r.error[0] ? r.error : "exec: spawn failed");
        worker_exec_result_free(&r);
        return -1;
    }
    if (r.truncated)
        farm_log(FARM_LOG_INFO, "worker", "event=output-truncated task=%" PRId64 " limit=max_output max_output=%" PRId64,
                 farm_task_id(ctx), cfg->max_output);
    msgpack_pack_map(result, 6);
    farm_pack_kv_int(result, "exit_code", r.exit_code);
    farm_pack_kv_int(result, "signal", r.signal);
    farm_pack_kv_bin(result, "stdout", r.out ? r.out : "", r.out_len);
    farm_pack_kv_bin(result, "stderr", r.err ? r.err : "", r.err_len);
    farm_pack_kv_bool(result, "truncated", r.truncated);
    farm_pack_kv_int(result, "duration_ms", r.duration_ms);
    worker_exec_result_free(&r);
    if (r.timed_out) {
        farm_task_fail(ctx, "timeout after %" PRId64 " ms", farm_task_timeout_ms(ctx));
        return -1;
    }
    if (r.cancelled) {
        farm_task_fail(ctx, "stopped");
        return -1;
    }
    if (r.signal != 0) {
        farm_task_fail(ctx, "killed by signal %d", r.signal);
        return -1;
    }
    if (r.exit_code != 0) {
        farm_task_fail(ctx, "exit code %d", r.exit_code);
        return -1;
    }
    return 0;
}

/* ---- registration ------------------------------------------------------- */

int worker_handlers_register(worker_registry_t *reg, const worker_handlers_cfg_t *cfg) {
    const farm_handler_t builtins[] = {
        {"noop", s_noop, NULL},
        {"sleep", s_sleep, NULL},
        {"ingest", worker_ingest_run, (void *)&cfg->ingest},
        {"interest", worker_interest_run, NULL},
        {"text", worker_text_run, NULL},
        {"exec", s_exec, (void *)cfg}, /* last: only with --allow-exec */
    };
    size_t n = sizeof builtins / sizeof builtins[0] - (cfg->allow_exec ? 0 : 1);
    for (size_t i = 0; i < n; i++) {
        int rc = worker_registry_add(reg, &builtins[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}
