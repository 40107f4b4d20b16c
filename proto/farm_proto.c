/* farm_proto: the field tables of every message and the packers of the
 * internal ones (see farm_proto.h). A field added here is decoded,
 * validated and documented in one move; PROTOCOL.md mirrors these tables. */
#include "farm_proto.h"
#include "farm_err.h"
#include "farm_state.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define F(st, name, type, req, min, max, def, limit) \
    {#name, FARM_T_##type, req, min, max, def, offsetof(st, name), limit}
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static farm_field_t s_head[] = {
    F(farm_req_head_t, op, STR, true, 1, 64, 0, NULL),
    F(farm_req_head_t, v, INT, false, INT64_MIN, INT64_MAX, 1, NULL),
};

enum { SUBMIT_TASKS, SUBMIT_NAME, SUBMIT_KEY };
static farm_field_t s_submit[] = {
    [SUBMIT_TASKS] = F(farm_req_submit_t, tasks, ARRAY, true, 1, 10000, 0, "max_batch"),
    [SUBMIT_NAME] = F(farm_req_submit_t, name, STR, false, 0, 200, 0, "max_name"),
    [SUBMIT_KEY] = F(farm_req_submit_t, key, STR, false, 1, 128, 0, "max_key"),
    F(farm_req_submit_t, priority, INT, false, -100, 100, 0, NULL),
    F(farm_req_submit_t, max_attempts, INT, false, 1, 100, 3, NULL),
    F(farm_req_submit_t, timeout_ms, INT, false, 0, INT64_MAX / 2, 0, NULL),
    F(farm_req_submit_t, delay_ms, INT, false, 0, INT64_MAX / 2, 0, NULL),
};

/* Order matters: the FARM_TASK_HAS_* bits are these indexes. */
static const farm_field_t s_task[] = {
    F(farm_req_task_t, type, STR, true, 1, FARM_TYPE_MAX, 0, NULL),
    F(farm_req_task_t, args, ANY, false, 0, 0, 0, NULL),
    F(farm_req_task_t, priority, INT, false, -100, 100, 0, NULL),
    F(farm_req_task_t, max_attempts, INT, false, 1, 100, 3, NULL),
    F(farm_req_task_t, timeout_ms, INT, false, 0, INT64_MAX / 2, 0, NULL),
    F(farm_req_task_t, delay_ms, INT, false, 0, INT64_MAX / 2, 0, NULL),
};

static const farm_field_t s_ids[] = {
    F(farm_req_ids_t, task, INT, false, 1, INT64_MAX, 0, NULL),
    F(farm_req_ids_t, job, INT, false, 1, INT64_MAX, 0, NULL),
};

static const farm_field_t s_list[] = {
    F(farm_req_list_t, job, INT, false, 1, INT64_MAX, 0, NULL),
    F(farm_req_list_t, state, STR, false, 1, 16, 0, NULL),
    F(farm_req_list_t, type, STR, false, 1, FARM_TYPE_MAX, 0, NULL),
    F(farm_req_list_t, after, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_req_list_t, limit, INT, false, 1, 1000, 100, NULL),
};

static const farm_field_t s_jobs[] = {
    F(farm_req_jobs_t, state, STR, false, 1, 16, 0, NULL),
    F(farm_req_jobs_t, after, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_req_jobs_t, limit, INT, false, 1, 1000, 100, NULL),
};

static const farm_field_t s_hb[] = {
    F(farm_msg_hb_t, m, STR, true, 1, 16, 0, NULL),
    F(farm_msg_hb_t, id, STR, false, 1, 200, 0, NULL),
    F(farm_msg_hb_t, host, STR, false, 0, 255, 0, NULL),
    F(farm_msg_hb_t, pid, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_hb_t, slots, INT, false, 0, 4096, 0, NULL),
    F(farm_msg_hb_t, types, ARRAY, false, 0, 1024, 0, NULL),
    F(farm_msg_hb_t, free, INT, true, 0, 1000000, 0, NULL),
    F(farm_msg_hb_t, epoch, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_hb_t, seq, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_hb_t, held, ARRAY, false, 0, 1000000, 0, NULL),
    F(farm_msg_hb_t, state, STR, false, 1, 16, 0, NULL),
    F(farm_msg_hb_t, completed, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_hb_t, failed, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_hb_t, idle, INT, false, 0, 4096, 0, NULL),
    F(farm_msg_hb_t, queued, INT, false, 0, 1000000, 0, NULL),
    F(farm_msg_hb_t, done, INT, false, 0, INT64_MAX, -1, NULL),
};

static const farm_field_t s_taskmsg[] = {
    F(farm_msg_task_t, m, STR, true, 1, 16, 0, NULL),
    F(farm_msg_task_t, epoch, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, seq, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, id, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, job, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, type, STR, false, 1, FARM_TYPE_MAX, 0, NULL),
    F(farm_msg_task_t, args, ANY, false, 0, 0, 0, NULL),
    F(farm_msg_task_t, attempt, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, timeout_ms, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_task_t, n, INT, false, 0, 1000000, 0, NULL),
    F(farm_msg_task_t, priority, INT, false, -100, 100, 0, NULL),
};

static const farm_field_t s_report[] = {
    F(farm_msg_report_t, m, STR, true, 1, 16, 0, NULL),
    F(farm_msg_report_t, task, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_report_t, attempt, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_report_t, worker, STR, false, 0, 200, 0, NULL),
    F(farm_msg_report_t, ms, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_report_t, pct, INT, false, 0, 100, 0, NULL),
    F(farm_msg_report_t, msg, STR, false, 0, 4096, 0, NULL),
    F(farm_msg_report_t, ok, BOOL, false, 0, 0, 0, NULL),
    F(farm_msg_report_t, cancelled, BOOL, false, 0, 0, 0, NULL),
    F(farm_msg_report_t, result, ANY, false, 0, 0, 0, NULL),
    F(farm_msg_report_t, error, STR, false, 0, 65536, 0, NULL),
    F(farm_msg_report_t, started_ms, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_report_t, finished_ms, INT, false, 0, INT64_MAX, 0, NULL),
    F(farm_msg_report_t, topic, STR, false, 1, 64, 0, NULL),
    F(farm_msg_report_t, body, ANY, false, 0, 0, 0, NULL),
    F(farm_msg_report_t, records, ARRAY, false, 0, FARM_RESULT_RECORDS_MAX, 0, NULL),
};

void farm_proto_set_limits(const farm_limits_t *l) {
    s_submit[SUBMIT_TASKS].max = l->max_batch;
    s_submit[SUBMIT_NAME].max = l->max_name;
    s_submit[SUBMIT_KEY].max = l->max_key;
}

int farm_req_head_decode(const msgpack_object *o, farm_req_head_t *r, farm_error_t *e) {
    return farm_msg_decode(s_head, NFIELDS(s_head), o, r, NULL, NULL, e);
}

int farm_req_submit_decode(const msgpack_object *o, farm_req_submit_t *r, uint64_t *present, farm_error_t *e) {
    return farm_msg_decode(s_submit, NFIELDS(s_submit), o, r, present, NULL, e);
}

bool farm_type_valid(farm_str_t s) {
    if (!s.ptr || s.len < 1 || s.len > FARM_TYPE_MAX)
        return false;
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int farm_req_task_decode(const msgpack_object *o, farm_req_task_t *r, uint64_t *present, const char *prefix,
                         farm_error_t *e) {
    int rc = farm_msg_decode(s_task, NFIELDS(s_task), o, r, present, prefix, e);
    if (rc)
        return rc;
    if (!farm_type_valid(r->type)) {
        char path[128];
        snprintf(path, sizeof path, "%s%stype", prefix ? prefix : "", prefix && *prefix ? "." : "");
        return farm_error_set(e, FARM_EBADREQ, path, "%s must be 1-64 bytes of [a-z0-9_.-]", path);
    }
    return 0;
}

int farm_req_ids_decode(const msgpack_object *o, farm_req_ids_t *r, uint64_t *present, farm_error_t *e) {
    return farm_msg_decode(s_ids, NFIELDS(s_ids), o, r, present, NULL, e);
}

int farm_req_list_decode(const msgpack_object *o, farm_req_list_t *r, farm_error_t *e) {
    return farm_msg_decode(s_list, NFIELDS(s_list), o, r, NULL, NULL, e);
}

int farm_req_jobs_decode(const msgpack_object *o, farm_req_jobs_t *r, farm_error_t *e) {
    return farm_msg_decode(s_jobs, NFIELDS(s_jobs), o, r, NULL, NULL, e);
}

int farm_msg_hb_decode(const msgpack_object *o, farm_msg_hb_t *r, farm_error_t *e) {
    return farm_msg_decode(s_hb, NFIELDS(s_hb), o, r, NULL, NULL, e);
}

int farm_msg_task_decode(const msgpack_object *o, farm_msg_task_t *r, farm_error_t *e) {
    return farm_msg_decode(s_taskmsg, NFIELDS(s_taskmsg), o, r, NULL, NULL, e);
}

int farm_msg_report_decode(const msgpack_object *o, farm_msg_report_t *r, farm_error_t *e) {
    return farm_msg_decode(s_report, NFIELDS(s_report), o, r, NULL, NULL, e);
}

/* ---- packers ---------------------------------------------------------- */

void farm_pack_hb(msgpack_packer *pk, const farm_msg_hb_t *m, const char *const *types, size_t ntypes,
                  const int64_t *held, size_t nheld) {
    msgpack_pack_map(pk, 16);
    farm_pack_kv_str(pk, "m", "hb");
    farm_pack_kv_strn(pk, "id", m->id.ptr, m->id.len);
    farm_pack_kv_strn(pk, "host", m->host.ptr, m->host.len);
    farm_pack_kv_int(pk, "pid", m->pid);
    farm_pack_kv_int(pk, "slots", m->slots);
    farm_pack_str(pk, "types");
    msgpack_pack_array(pk, ntypes);
    for (size_t i = 0; i < ntypes; i++)
        farm_pack_str(pk, types[i]);
    farm_pack_kv_int(pk, "free", m->free);
    farm_pack_kv_int(pk, "epoch", m->epoch);
    farm_pack_kv_int(pk, "seq", m->seq);
    farm_pack_str(pk, "held");
    msgpack_pack_array(pk, nheld);
    for (size_t i = 0; i < nheld; i++)
        msgpack_pack_int64(pk, held[i]);
    farm_pack_kv_strn(pk, "state", m->state.ptr, m->state.len);
    farm_pack_kv_int(pk, "completed", m->completed);
    farm_pack_kv_int(pk, "failed", m->failed);
    farm_pack_kv_int(pk, "idle", m->idle);
    farm_pack_kv_int(pk, "queued", m->queued);
    farm_pack_kv_int(pk, "done", m->completed + m->failed);
}

void farm_pack_ready(msgpack_packer *pk, int64_t free, int64_t epoch, int64_t seq, int64_t idle, int64_t queued,
                     int64_t done) {
    msgpack_pack_map(pk, 7);
    farm_pack_kv_str(pk, "m", "ready");
    farm_pack_kv_int(pk, "free", free);
    farm_pack_kv_int(pk, "epoch", epoch);
    farm_pack_kv_int(pk, "seq", seq);
    farm_pack_kv_int(pk, "idle", idle);
    farm_pack_kv_int(pk, "queued", queued);
    farm_pack_kv_int(pk, "done", done);
}

void farm_pack_revoke(msgpack_packer *pk, int64_t n) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_str(pk, "m", "revoke");
    farm_pack_kv_int(pk, "n", n);
}

void farm_pack_give(msgpack_packer *pk, const int64_t *ids, size_t n, int64_t epoch, int64_t seq, int64_t free,
                    int64_t idle, int64_t queued) {
    msgpack_pack_map(pk, 7);
    farm_pack_kv_str(pk, "m", "give");
    farm_pack_str(pk, "held");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int64(pk, ids[i]);
    farm_pack_kv_int(pk, "epoch", epoch);
    farm_pack_kv_int(pk, "seq", seq);
    farm_pack_kv_int(pk, "free", free);
    farm_pack_kv_int(pk, "idle", idle);
    farm_pack_kv_int(pk, "queued", queued);
}

void farm_pack_welcome(msgpack_packer *pk, int64_t epoch) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_str(pk, "m", "welcome");
    farm_pack_kv_int(pk, "epoch", epoch);
}

void farm_pack_task(msgpack_packer *pk, const farm_msg_task_t *t, const void *args_raw, size_t args_len) {
    msgpack_pack_map(pk, 10);
    farm_pack_kv_str(pk, "m", "task");
    farm_pack_kv_int(pk, "priority", t->priority);
    farm_pack_kv_int(pk, "epoch", t->epoch);
    farm_pack_kv_int(pk, "seq", t->seq);
    farm_pack_kv_int(pk, "id", t->id);
    farm_pack_kv_int(pk, "job", t->job);
    farm_pack_kv_strn(pk, "type", t->type.ptr, t->type.len);
    farm_pack_str(pk, "args");
    farm_pack_raw(pk, args_raw, args_len);
    farm_pack_kv_int(pk, "attempt", t->attempt);
    farm_pack_kv_int(pk, "timeout_ms", t->timeout_ms);
}

void farm_pack_cancel(msgpack_packer *pk, int64_t task) {
    msgpack_pack_map(pk, 2);
    farm_pack_kv_str(pk, "m", "cancel");
    farm_pack_kv_int(pk, "id", task);
}

void farm_pack_start(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, int64_t ms) {
    msgpack_pack_map(pk, 5);
    farm_pack_kv_str(pk, "m", "start");
    farm_pack_kv_int(pk, "task", task);
    farm_pack_kv_int(pk, "attempt", attempt);
    farm_pack_kv_str(pk, "worker", worker);
    farm_pack_kv_int(pk, "ms", ms);
}

void farm_pack_prog(msgpack_packer *pk, int64_t task, int64_t attempt, int pct, const char *msg, int64_t ms) {
    msgpack_pack_map(pk, 6);
    farm_pack_kv_str(pk, "m", "prog");
    farm_pack_kv_int(pk, "task", task);
    farm_pack_kv_int(pk, "attempt", attempt);
    farm_pack_kv_int(pk, "pct", pct < 0 ? 0 : pct > 100 ? 100 : pct);
    farm_pack_kv_str(pk, "msg", msg);
    farm_pack_kv_int(pk, "ms", ms);
}

void farm_pack_result(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, bool ok, bool cancelled,
                      const void *result_raw, size_t result_len, const char *error, int64_t started_ms,
                      int64_t finished_ms) {
    farm_pack_result_records(pk, task, attempt, worker, ok, cancelled, result_raw, result_len, error, started_ms,
                             finished_ms, NULL, 0);
}

void farm_pack_result_records(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, bool ok,
                              bool cancelled, const void *result_raw, size_t result_len, const char *error,
                              int64_t started_ms, int64_t finished_ms, const void *records_raw,
                              size_t records_len) {
    msgpack_pack_map(pk, records_raw ? 11 : 10);
    farm_pack_kv_str(pk, "m", "result");
    farm_pack_kv_int(pk, "task", task);
    farm_pack_kv_int(pk, "attempt", attempt);
    farm_pack_kv_str(pk, "worker", worker);
    farm_pack_kv_bool(pk, "ok", ok);
    farm_pack_kv_bool(pk, "cancelled", cancelled);
    farm_pack_str(pk, "result");
    farm_pack_raw(pk, result_raw, result_len);
    farm_pack_kv_str(pk, "error", error);
    farm_pack_kv_int(pk, "started_ms", started_ms);
    farm_pack_kv_int(pk, "finished_ms", finished_ms);
    if (records_raw) {
        farm_pack_str(pk, "records");
        farm_pack_raw(pk, records_raw, records_len);
    }
}

void farm_pack_task_event(msgpack_packer *pk, int64_t id, int64_t job, int state, int progress, int64_t attempt,
                          const char *worker, int64_t ms) {
    msgpack_pack_map(pk, 7);
    farm_pack_kv_int(pk, "id", id);
    farm_pack_kv_int(pk, "job", job);
    farm_pack_kv_str(pk, "state", farm_state_name(state));
    farm_pack_kv_int(pk, "progress", progress);
    farm_pack_kv_int(pk, "attempt", attempt);
    farm_pack_kv_str(pk, "worker", worker);
    farm_pack_kv_int(pk, "ms", ms);
}

void farm_pack_task_events(msgpack_packer *pk, const void *events, size_t len, size_t n) {
    msgpack_pack_map(pk, 1);
    farm_pack_str(pk, "events");
    msgpack_pack_array(pk, n);
    farm_pack_raw(pk, events, len);
}

void farm_pack_pub(msgpack_packer *pk, const char *topic, const void *body_raw, size_t body_len) {
    msgpack_pack_map(pk, 3);
    farm_pack_kv_str(pk, "m", "pub");
    farm_pack_kv_str(pk, "topic", topic);
    farm_pack_str(pk, "body");
    farm_pack_raw(pk, body_raw, body_len);
}
