/* vent_front: the front door. One request in, exactly one reply out.
 *
 * Every request is decoded against its field table before anything is
 * touched; a submit is validated whole (every task, every limit) before
 * the write transaction begins, so a bad task in a batch of ten thousand
 * costs no lock and stores nothing. The reply to a submit is sent only
 * after COMMIT: `ok` means stored. Errors carry the spec's code, the field
 * to blame and the limit that was hit.
 */
#include "vent.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_state.h"
#include "farm_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*s_op_fn)(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e);

/* A validated task of a submit, its args packed in the batch buffer. */
typedef struct {
    farm_task_spec_t spec;
    size_t args_off; /* offset of args in the batch buffer, or SIZE_MAX for nil */
} s_task_t;

/* ---- per-type admission ------------------------------------------------- *
 * Some types have limits the front door enforces, so a task that no worker
 * would accept is refused at submit with a bad_request naming the limit,
 * instead of failing later on a worker. A check sees the task's args (NULL
 * when absent; the worker reports missing args) and its "tasks[i]" prefix. */

typedef int (*s_admit_fn)(const msgpack_object *args, const char *prefix, farm_error_t *e);

/* ingest: args.records, when given, is an array of at most max_records. */
static int s_admit_ingest(const msgpack_object *args, const char *prefix, farm_error_t *e) {
    const msgpack_object *recs = args && args->type == MSGPACK_OBJECT_MAP ? farm_msg_get(args, "records") : NULL;
    if (!recs || recs->type == MSGPACK_OBJECT_NIL)
        return 0;
    char f[64];
    snprintf(f, sizeof f, "%s.args.records", prefix);
    if (recs->type != MSGPACK_OBJECT_ARRAY)
        return farm_error_set(e, FARM_EBADREQ, f, "%s must be an array of records", f);
    if (recs->via.array.size > FARM_INGEST_MAX_RECORDS)
        return farm_error_set(e, FARM_EBADREQ, f, "%s has %" PRIu32 " entries, over the limit max_records=%d", f,
                              recs->via.array.size, FARM_INGEST_MAX_RECORDS);
    return 0;
}

static const struct {
    const char *type;
    s_admit_fn check;
} s_admit[] = {
    {"ingest", s_admit_ingest},
};

static int s_admit_task(const farm_req_task_t *t, const char *prefix, farm_error_t *e) {
    for (size_t i = 0; i < sizeof s_admit / sizeof s_admit[0]; i++)
        if (farm_str_eq(t->type, s_admit[i].type))
            return s_admit[i].check(t->args, prefix, e);
    return 0;
}

static int s_op_submit(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_submit_t r;
    uint64_t present;
    int rc = farm_req_submit_decode(req, &r, &present, e);
    if (rc)
        return rc;
    size_t n = r.tasks->via.array.size;
    s_task_t *tasks = calloc(n, sizeof *tasks);
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer apk;
    msgpack_packer_init(&apk, &args, msgpack_sbuffer_write);
    if (!tasks) {
        rc = farm_error_set(e, FARM_EINTERNAL, NULL, "out of memory");
        goto out;
    }
    /* Validate everything first: no lock is held while reading the batch. */
    for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "tasks[%zu]", i);
        farm_req_task_t t;
        uint64_t has;
        if ((rc = farm_req_task_decode(&r.tasks->via.array.ptr[i], &t, &has, prefix, e)) ||
            (rc = s_admit_task(&t, prefix, e)))
            goto out;
        farm_task_spec_t *s = &tasks[i].spec;
        s->type = t.type;
        s->priority = has & FARM_TASK_HAS_PRIORITY ? t.priority : r.priority;
        s->max_attempts = has & FARM_TASK_HAS_MAX_ATTEMPTS ? t.max_attempts : r.max_attempts;
        s->timeout_ms = has & FARM_TASK_HAS_TIMEOUT ? t.timeout_ms : r.timeout_ms;
        s->delay_ms = has & FARM_TASK_HAS_DELAY ? t.delay_ms : r.delay_ms;
        tasks[i].args_off = SIZE_MAX;
        if (t.args) {
            size_t off = args.size;
            if (msgpack_pack_object(&apk, *t.args) != 0) {
                rc = farm_error_set(e, FARM_EINTERNAL, NULL, "could not encode args");
                goto out;
            }
            s->args_len = args.size - off;
            if ((int64_t)s->args_len > v->limits.max_args) {
                char f[48];
                snprintf(f, sizeof f, "%s.args", prefix);
                rc = farm_error_set(e, FARM_ETOOLARGE, f, "%s is %zu bytes, over the limit max_args=%" PRId64, f,
                                    s->args_len, v->limits.max_args);
                goto out;
            }
            tasks[i].args_off = off;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (tasks[i].args_off != SIZE_MAX)
            tasks[i].spec.args = args.data + tasks[i].args_off;

    if ((rc = farm_store_begin(v->store))) {
        farm_error_set(e, FARM_EINTERNAL, NULL, "database busy or failing; nothing was stored");
        goto out;
    }
    int64_t job = 0;
    bool dup = false;
    if (r.key.ptr) {
        rc = farm_store_job_by_key(v->store, r.key, &job);
        if (rc == 0)
            dup = true;
        else if (rc != FARM_ENOTFOUND)
            goto fail;
    }
    if (!dup) {
        int64_t pending = farm_store_pending(v->store);
        if (pending + (int64_t)n > v->limits.max_pending) {
            farm_store_rollback(v->store);
            rc = farm_error_set(e, FARM_EBUSY, NULL,
                                "%" PRId64 " tasks pending, the limit max_pending=%" PRId64 " would be passed; retry later",
                                pending, v->limits.max_pending);
            goto out;
        }
        int64_t now = farm_now_ms();
        if ((rc = farm_store_job_insert(v->store, r.name, r.key, now, (int64_t)n, &job)))
            goto fail;
        for (size_t i = 0; i < n; i++) {
            int64_t id;
            if ((rc = farm_store_task_insert(v->store, job, &tasks[i].spec, now, &id)))
                goto fail;
        }
    }
    /* Pack the reply inside the transaction so the ids are consistent. */
    msgpack_pack_map(pk, 4);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_kv_int(pk, "job", job);
    farm_pack_str(pk, "tasks");
    if ((rc = farm_store_pack_job_task_ids(v->store, job, pk)))
        goto fail;
    farm_pack_kv_bool(pk, "duplicate", dup);
    if ((rc = farm_store_commit(v->store)))
        goto fail;
    if (!dup) {
        vent_work_added(v);
        farm_log(FARM_LOG_DEBUG, "vent", "event=submit job=%" PRId64 " tasks=%zu", job, n);
    }
    rc = 0;
    goto out;
fail:
    farm_store_rollback(v->store);
    rc = farm_error_set(e, FARM_EINTERNAL, NULL, "the database failed; nothing was stored");
out:
    free(tasks);
    msgpack_sbuffer_destroy(&args);
    return rc;
}

/* Exactly one of task and job; `which` names the op for the message. */
static int s_ids(const msgpack_object *req, farm_req_ids_t *r, bool task_ok, bool job_ok, const char *which,
                 farm_error_t *e) {
    uint64_t present = 0;
    int rc = farm_req_ids_decode(req, r, &present, e);
    if (rc)
        return rc;
    bool has_task = present & 1, has_job = present & 2;
    if (has_task && has_job)
        return farm_error_set(e, FARM_EBADREQ, "task", "%s takes task or job, not both", which);
    if (has_task && !task_ok)
        return farm_error_set(e, FARM_EBADREQ, "job", "%s needs a job", which);
    if (has_job && !job_ok)
        return farm_error_set(e, FARM_EBADREQ, "task", "%s needs a task", which);
    if (!has_task && !has_job)
        return farm_error_set(e, FARM_EBADREQ, task_ok ? "task" : "job", "%s needs %s", which,
                              task_ok && job_ok ? "a task or a job" : task_ok ? "a task" : "a job");
    return 0;
}

static int s_store_err(int rc, farm_error_t *e, const char *what, int64_t id) {
    if (rc == FARM_ENOTFOUND)
        return farm_error_set(e, rc, what, "no %s %" PRId64, what, id);
    if (rc == FARM_ECONFLICT)
        return farm_error_set(e, rc, what, "%s %" PRId64 " is not in a state that allows this", what, id);
    return farm_error_set(e, FARM_EINTERNAL, NULL, "the database failed; nothing changed");
}

static int s_op_status(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_ids_t r;
    int rc = s_ids(req, &r, true, true, "status", e);
    if (rc)
        return rc;
    /* A failed op's partial reply is dropped by vent_front_handle. */
    msgpack_pack_map(pk, 2);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_str(pk, r.task ? "task" : "job");
    if (r.task)
        rc = farm_store_pack_task(v->store, r.task, true, vent_why, v, pk);
    else
        rc = farm_store_pack_job(v->store, r.job, pk);
    return rc ? s_store_err(rc, e, r.task ? "task" : "job", r.task ? r.task : r.job) : 0;
}

static int s_op_result(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_ids_t r;
    int rc = s_ids(req, &r, true, false, "result", e);
    if (rc)
        return rc;
    rc = farm_store_pack_result(v->store, r.task, pk);
    return rc ? s_store_err(rc, e, "task", r.task) : 0;
}

static int s_state_arg(farm_str_t s, int *state, farm_error_t *e) {
    *state = -1;
    if (!s.ptr)
        return 0;
    *state = farm_state_parse(s.ptr, s.len);
    if (*state < 0)
        return farm_error_set(e, FARM_EBADREQ, "state",
                              "state must be one of pending, running, retrying, completed, failed, cancelled");
    return 0;
}

static int s_paged(int rc, farm_error_t *e) {
    return rc ? farm_error_set(e, FARM_EINTERNAL, NULL, "the database failed") : 0;
}

static int s_op_list(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_list_t r;
    int state, rc = farm_req_list_decode(req, &r, e);
    if (rc || (rc = s_state_arg(r.state, &state, e)))
        return rc;
    if (r.type.ptr && !farm_type_valid(r.type))
        return farm_error_set(e, FARM_EBADREQ, "type", "type must be 1-64 bytes of [a-z0-9_.-]");
    return s_paged(farm_store_pack_list(v->store, r.job, state, r.type, r.after, r.limit, vent_why, v, pk), e);
}

static int s_op_jobs(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_jobs_t r;
    int state, rc = farm_req_jobs_decode(req, &r, e);
    if (rc || (rc = s_state_arg(r.state, &state, e)))
        return rc;
    if (state == FARM_TASK_RETRYING)
        return farm_error_set(e, FARM_EBADREQ, "state",
                              "a job's state is one of pending, running, completed, failed, cancelled");
    return s_paged(farm_store_pack_jobs(v->store, state, r.after, r.limit, pk), e);
}

static void s_count_reply(msgpack_packer *pk, const char *key, int64_t n) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_kv_int(pk, key, n);
}

static int s_op_cancel(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_ids_t r;
    int rc = s_ids(req, &r, true, true, "cancel", e);
    if (rc)
        return rc;
    int64_t n;
    rc = farm_store_cancel(v->store, r.task, r.job, farm_now_ms(), vent_sched_stop, v, &n);
    if (rc)
        return s_store_err(rc, e, r.task ? "task" : "job", r.task ? r.task : r.job);
    s_count_reply(pk, "cancelled", n);
    return 0;
}

static int s_op_retry(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_ids_t r;
    int rc = s_ids(req, &r, true, true, "retry", e);
    if (rc)
        return rc;
    int64_t n;
    rc = farm_store_retry(v->store, r.task, r.job, farm_now_ms(), &n);
    if (rc)
        return s_store_err(rc, e, r.task ? "task" : "job", r.task ? r.task : r.job);
    vent_work_added(v);
    s_count_reply(pk, "retried", n);
    return 0;
}

static int s_op_delete(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    farm_req_ids_t r;
    int rc = s_ids(req, &r, false, true, "delete", e);
    if (rc)
        return rc;
    int64_t n;
    rc = farm_store_delete_job(v->store, r.job, &n);
    if (rc == FARM_ECONFLICT)
        return farm_error_set(e, rc, "job", "job %" PRId64 " has tasks that are not final; cancel it first", r.job);
    if (rc)
        return s_store_err(rc, e, "job", r.job);
    s_count_reply(pk, "deleted", n);
    return 0;
}

static int s_op_stats(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    vent_pack_stats(v, pk, true);
    return 0;
}

static int s_op_workers(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_str(pk, "workers");
    msgpack_pack_array(pk, v->nworkers);
    for (size_t i = 0; i < v->nworkers; i++)
        vent_pack_worker(pk, v->workers[i]);
    return 0;
}

static int s_op_health(vent_t *v, const msgpack_object *req, msgpack_packer *pk, farm_error_t *e) {
    msgpack_pack_map(pk, 4);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_kv_str(pk, "status", "ok");
    farm_pack_kv_str(pk, "version", FARM_VERSION);
    farm_pack_kv_int(pk, "uptime_s", (farm_mono_ms() - v->started_mono) / 1000);
    return 0;
}

static const struct {
    const char *name;
    s_op_fn fn;
} s_ops[] = {
    {"submit", s_op_submit}, {"status", s_op_status}, {"result", s_op_result}, {"list", s_op_list},
    {"jobs", s_op_jobs},     {"cancel", s_op_cancel}, {"retry", s_op_retry},   {"delete", s_op_delete},
    {"stats", s_op_stats},   {"workers", s_op_workers}, {"health", s_op_health},
};

void vent_front_handle(vent_t *v, const void *req, size_t len, msgpack_sbuffer *reply) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, reply, msgpack_sbuffer_write);
    farm_error_t e = {0};
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096)) {
        farm_error_set(&e, FARM_EINTERNAL, NULL, "out of memory");
        farm_pack_error(&pk, &e);
        return;
    }
    msgpack_object o;
    farm_req_head_t h;
    int rc;
    if ((int64_t)len > v->limits.max_frame) {
        rc = farm_error_set(&e, FARM_ETOOLARGE, NULL, "the request is %zu bytes, over the limit max_frame=%" PRId64,
                            len, v->limits.max_frame);
    } else if (!(rc = farm_msg_unpack(req, len, &z, &o, &e)) && !(rc = farm_req_head_decode(&o, &h, &e))) {
        if (h.v != FARM_PROTO_VERSION) {
            rc = farm_error_set(&e, FARM_EVERSION, "v", "protocol version %" PRId64 " is not supported; this farm speaks 1",
                                h.v);
        } else {
            rc = FARM_EUNKNOWNOP;
            for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++)
                if (farm_str_eq(h.op, s_ops[i].name)) {
                    rc = s_ops[i].fn(v, &o, &pk, &e);
                    break;
                }
            if (rc == FARM_EUNKNOWNOP && !e.code) {
                char op[65];
                farm_error_set(&e, rc, "op", "unknown op \"%s\"", farm_str_copy(op, sizeof op, h.op));
            }
        }
    }
    if (rc) {
        /* Whatever the op packed before it failed is dropped: the reply is only the error. */
        reply->size = 0;
        farm_pack_error(&pk, &e);
        farm_log(FARM_LOG_DEBUG, "vent", "event=request_error code=%s field=%s", farm_err_name(e.code),
                 e.field[0] ? e.field : "-");
    }
    msgpack_zone_destroy(&z);
}
