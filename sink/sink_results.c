/* sink_results: turning reports into stored state (see sink.h). */
#include "sink.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int s_owe_ack(sink_t *s, farm_str_t worker, int64_t task, int64_t attempt) {
    if (!worker.ptr || !worker.len)
        return 0;
    if (s->nacks == s->capacks) {
        size_t cap = s->capacks ? s->capacks * 2 : 256;
        sink_ack_t *p = realloc(s->acks, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        s->acks = p;
        s->capacks = cap;
    }
    sink_ack_t *a = &s->acks[s->nacks++];
    farm_str_copy(a->worker, sizeof a->worker, worker);
    a->task = task;
    a->attempt = attempt;
    return 0;
}

static int s_ack_cmp(const void *a, const void *b) {
    return strcmp(((const sink_ack_t *)a)->worker, ((const sink_ack_t *)b)->worker);
}

void sink_acks_flush(sink_t *s, bool committed) {
    if (!committed || !s->nacks) {
        s->nacks = 0;
        return;
    }
    qsort(s->acks, s->nacks, sizeof *s->acks, s_ack_cmp);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    for (size_t i = 0; i < s->nacks;) {
        size_t j = i;
        while (j < s->nacks && strcmp(s->acks[j].worker, s->acks[i].worker) == 0)
            j++;
        b.size = 0;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        farm_pack_str(&pk, "acks");
        msgpack_pack_array(&pk, j - i);
        for (size_t k = i; k < j; k++) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_int64(&pk, s->acks[k].task);
            msgpack_pack_int64(&pk, s->acks[k].attempt);
        }
        char topic[256];
        snprintf(topic, sizeof topic, "ack/%s", s->acks[i].worker);
        sink_publish(s, topic, b.data, b.size);
        i = j;
    }
    msgpack_sbuffer_destroy(&b);
    s->nacks = 0;
}

/* Events the ventilator made: republish, and note the jobs they touch. */
static void s_republish(sink_t *s, const farm_msg_report_t *m) {
    char topic[65];
    farm_str_copy(topic, sizeof topic, m->topic);
    if (!m->body)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *m->body) == 0)
        sink_publish(s, topic, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
    if (strcmp(topic, "task") != 0)
        return;
    const msgpack_object *ev = farm_msg_get(m->body, "events");
    for (uint32_t i = 0; ev && ev->type == MSGPACK_OBJECT_ARRAY && i < ev->via.array.size; i++) {
        const msgpack_object *job = farm_msg_get(&ev->via.array.ptr[i], "job");
        if (job && job->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            sink_dirty(s, (int64_t)job->via.u64);
    }
}

/* True when every element of a result's "records" is a pair [idx >= 0,
 * bin or str of at least one byte], so they can all be stored. */
static bool s_records_valid(const msgpack_object *recs) {
    for (uint32_t i = 0; recs && i < recs->via.array.size; i++) {
        const msgpack_object *p = &recs->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
            p->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            p->via.array.ptr[0].via.u64 > (uint64_t)INT64_MAX)
            return false;
        const msgpack_object *d = &p->via.array.ptr[1];
        if (!((d->type == MSGPACK_OBJECT_BIN && d->via.bin.size > 0) ||
              (d->type == MSGPACK_OBJECT_STR && d->via.str.size > 0)))
            return false;
    }
    return true;
}

/* Store the records of a task's first successful result, in the batch's
 * transaction. Returns 0 or the store's error. */
static int s_records_put(sink_t *s, int64_t task, const msgpack_object *recs) {
    for (uint32_t i = 0; recs && i < recs->via.array.size; i++) {
        const msgpack_object *p = recs->via.array.ptr[i].via.array.ptr;
        const msgpack_object *d = &p[1];
        const char *data = d->type == MSGPACK_OBJECT_BIN ? d->via.bin.ptr : d->via.str.ptr;
        size_t n = d->type == MSGPACK_OBJECT_BIN ? d->via.bin.size : d->via.str.size;
        int rc = farm_store_records_put(s->store, task, (int64_t)p[0].via.u64, data, n);
        if (rc)
            return rc;
    }
    return 0;
}

static size_t s_slot(int64_t id, size_t cap) { return ((uint64_t)id * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1); }

static bool s_done_has(const sink_t *s, int64_t id) {
    if (!s->capdone)
        return false;
    for (size_t i = s_slot(id, s->capdone);; i = (i + 1) & (s->capdone - 1)) {
        if (s->done[i] == id)
            return true;
        if (s->done[i] == 0)
            return false;
    }
}

void sink_batch_scan(sink_t *s, zmq_msg_t *msgs, size_t n) {
    size_t cap = 64, bytes = 0;
    for (size_t k = 0; k < n; k++)
        bytes += zmq_msg_size(&msgs[k]);
    /* A result takes at least 16 bytes: room for every one at half load. */
    while (cap < n * 2 || cap < bytes / 8)
        cap *= 2;
    if (cap > s->capdone) {
        int64_t *p = realloc(s->done, cap * sizeof *p);
        if (!p) {
            s->capdone = 0; /* without the set every report is applied: slower, still right */
            return;
        }
        s->done = p;
        s->capdone = cap;
    }
    memset(s->done, 0, s->capdone * sizeof *s->done);
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096)) {
        s->capdone = 0;
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const char *buf = zmq_msg_data(&msgs[k]);
        size_t len = zmq_msg_size(&msgs[k]), off = 0;
        msgpack_object o;
        farm_error_t e;
        while (off < len && farm_msg_unpack_next(buf, len, &off, &z, &o, &e) == 0) {
            const msgpack_object *m = farm_msg_get(&o, "m"), *t = farm_msg_get(&o, "task");
            if (m && m->type == MSGPACK_OBJECT_STR && m->via.str.size == 6 &&
                memcmp(m->via.str.ptr, "result", 6) == 0 && t && t->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                t->via.u64 > 0 && t->via.u64 <= INT64_MAX) {
                int64_t id = (int64_t)t->via.u64;
                size_t i = s_slot(id, s->capdone);
                while (s->done[i] != 0 && s->done[i] != id)
                    i = (i + 1) & (s->capdone - 1);
                s->done[i] = id;
            }
            msgpack_zone_clear(&z);
        }
    }
    msgpack_zone_destroy(&z);
}

/* Apply one decoded report. Returns 0, or FARM_ESTORE (roll back). */
static int s_apply_one(sink_t *s, const msgpack_object *o) {
    farm_error_t e;
    farm_msg_report_t m;
    int rc = 0;
    if (farm_msg_report_decode(o, &m, &e)) {
        farm_log(FARM_LOG_WARN, "sink", "event=bad_report err=\"%s\"", e.message);
        return 0;
    }
    char worker[201];
    farm_str_copy(worker, sizeof worker, m.worker);
    if ((farm_str_eq(m.m, "start") || farm_str_eq(m.m, "prog")) && s_done_has(s, m.task)) {
        /* its result is in this batch */
    } else if (farm_str_eq(m.m, "start")) {
        rc = farm_store_started(s->store, m.task, m.attempt, worker[0] ? worker : NULL, m.ms ? m.ms : farm_now_ms());
    } else if (farm_str_eq(m.m, "prog")) {
        rc = farm_store_progress(s->store, m.task, m.attempt, (int)m.pct, m.msg, m.ms ? m.ms : farm_now_ms());
    } else if (farm_str_eq(m.m, "result")) {
        /* Records are checked before anything is stored: a malformed list
         * rejects the whole report, like any malformed report. */
        if (!s_records_valid(m.records)) {
            farm_log(FARM_LOG_WARN, "sink", "event=bad_report task=%" PRId64 " err=\"records must be [idx, bin] pairs\"",
                     m.task);
            return 0;
        }
        /* The result value is stored as the bytes that came. */
        msgpack_sbuffer rb;
        msgpack_sbuffer_init(&rb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &rb, msgpack_sbuffer_write);
        if (m.result)
            msgpack_pack_object(&pk, *m.result);
        char error[4096];
        farm_str_copy(error, sizeof error, m.error);
        farm_result_in_t r = {
            .task = m.task, .attempt = m.attempt, .worker = worker[0] ? worker : NULL, .ok = m.ok,
            .cancelled = m.cancelled, .result = rb.size ? rb.data : NULL, .result_len = rb.size,
            .error = m.ok ? NULL : (error[0] ? error : "failed"), .started_ms = m.started_ms,
            .finished_ms = m.finished_ms,
        };
        farm_result_outcome_t out;
        int64_t created = 0, now = farm_now_ms();
        rc = farm_store_result(s->store, &r, now, &out, &created);
        msgpack_sbuffer_destroy(&rb);
        /* Records go with the first successful result only: a duplicate or
         * stale result stores none, so a retried attempt stores nothing twice. */
        if (!rc && out == FARM_RESULT_STORED && m.ok && m.records)
            rc = s_records_put(s, m.task, m.records);
        if (!rc) {
            if (out == FARM_RESULT_DUPLICATE)
                s->duplicates++;
            if (created)
                sink_perf_count(s, now - created);
            if (s_owe_ack(s, m.worker, m.task, m.attempt))
                rc = FARM_ESTORE;
        }
    } else if (farm_str_eq(m.m, "pub")) {
        s_republish(s, &m);
    } else {
        farm_log(FARM_LOG_WARN, "sink", "event=bad_report err=\"unknown kind\"");
    }
    return rc;
}

int sink_apply(sink_t *s, const void *buf, size_t len) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096))
        return 0;
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < len) {
        msgpack_object o;
        farm_error_t e;
        size_t at = off;
        if (farm_msg_unpack_next(buf, len, &off, &z, &o, &e)) {
            /* Nothing after it can be framed: the rest of the frame goes. */
            farm_log(FARM_LOG_WARN, "sink", "event=bad_report bytes=%zu err=\"%s\"", len - at, e.message);
            break;
        }
        rc = s_apply_one(s, &o);
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
    return rc;
}
