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

int sink_apply(sink_t *s, const void *buf, size_t len) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096))
        return 0;
    msgpack_object o;
    farm_error_t e;
    farm_msg_report_t m;
    int rc = 0;
    if (farm_msg_unpack(buf, len, &z, &o, &e) || farm_msg_report_decode(&o, &m, &e)) {
        farm_log(FARM_LOG_WARN, "sink", "event=bad_report err=\"%s\"", e.message);
        goto out;
    }
    char worker[201];
    farm_str_copy(worker, sizeof worker, m.worker);
    if (farm_str_eq(m.m, "start")) {
        rc = farm_store_started(s->store, m.task, m.attempt, worker[0] ? worker : NULL, m.ms ? m.ms : farm_now_ms());
    } else if (farm_str_eq(m.m, "prog")) {
        rc = farm_store_progress(s->store, m.task, m.attempt, (int)m.pct, m.msg, m.ms ? m.ms : farm_now_ms());
    } else if (farm_str_eq(m.m, "result")) {
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
out:
    msgpack_zone_destroy(&z);
    return rc;
}
