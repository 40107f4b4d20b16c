/* sink_feed: the status feed (see the spec's section 4). Task events are
 * batched per stored batch; job views go out at most ten times a second
 * per job, only for jobs that changed; figures for stats are summed per
 * second into the database, where the ventilator reads them. */
#include "sink.h"

#include "farm_log.h"
#include "farm_proto.h"
#include "farm_state.h"
#include "farm_time.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void sink_publish(sink_t *s, const char *topic, const void *body, size_t len) {
    if (zmq_send(s->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(s->pub, body, len, ZMQ_DONTWAIT) < 0)
        farm_log(FARM_LOG_WARN, "sink", "op=publish topic=%s err=\"%s\"", topic, zmq_strerror(errno));
}

void sink_dirty(sink_t *s, int64_t job) {
    for (size_t i = 0; i < s->ndirty; i++)
        if (s->dirty[i] == job)
            return;
    if (s->ndirty == s->capdirty) {
        size_t cap = s->capdirty ? s->capdirty * 2 : 64;
        int64_t *p = realloc(s->dirty, cap * sizeof *p);
        if (!p)
            return; /* the view will go out with the next change */
        s->dirty = p;
        s->capdirty = cap;
    }
    s->dirty[s->ndirty++] = job;
}

void sink_on_change(void *ud, const farm_change_t *c) {
    sink_t *s = ud;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->events, msgpack_sbuffer_write);
    farm_pack_task_event(&pk, c->id, c->job, c->state, c->progress, c->attempt, c->worker, c->ms);
    s->nevents++;
    sink_dirty(s, c->job);
}

void sink_events_flush(sink_t *s, bool committed) {
    if (committed && s->nevents) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        farm_pack_task_events(&pk, s->events.data, s->events.size, s->nevents);
        sink_publish(s, "task", b.data, b.size);
        msgpack_sbuffer_destroy(&b);
    }
    s->events.size = 0;
    s->nevents = 0;
}

void sink_jobs_flush(sink_t *s) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    for (size_t i = 0; i < s->ndirty; i++) {
        b.size = 0;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        if (farm_store_pack_job(s->store, s->dirty[i], &pk) == 0)
            sink_publish(s, "job", b.data, b.size);
    }
    msgpack_sbuffer_destroy(&b);
    s->ndirty = 0;
}

void sink_perf_count(sink_t *s, int64_t latency_ms) {
    s->completed++;
    s->hist[farm_hist_bucket(latency_ms)]++;
}

void sink_perf_flush(sink_t *s, bool force) {
    int64_t sec = farm_now_ms() / 1000;
    if (!force && sec == s->sec)
        return;
    if (s->completed) {
        if (farm_store_begin(s->store) == 0) {
            if (farm_store_perf_add(s->store, s->sec, s->completed, s->hist) || farm_store_commit(s->store))
                farm_store_rollback(s->store);
        }
    }
    s->completed = 0;
    memset(s->hist, 0, sizeof s->hist);
    s->sec = sec;
}
