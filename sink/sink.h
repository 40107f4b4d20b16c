/* sink: the farm's collector. It stores what workers report and owns the
 * status feed.
 *
 * Reports arrive on one PULL socket, from workers (start, prog, result)
 * and from the ventilator (pub: events to republish). The sink takes them
 * in batches and stores each batch in one transaction; only after COMMIT
 * does it acknowledge results to their workers (feed topic "ack/<worker>"),
 * so a worker forgets a result only once it is durable. A crash between
 * loses nothing: unacknowledged results are sent again, and the first
 * result of a task wins, later ones are counted.
 */
#ifndef SINK_H
#define SINK_H

#include <msgpack.h>
#include <zmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "farm_hist.h"
#include "farm_store.h"

/* One acknowledgement owed to a worker after the batch commits. */
typedef struct {
    char worker[201];
    int64_t task, attempt;
} sink_ack_t;

typedef struct {
    farm_store_t *store;          /* the database */
    void *pull;                   /* reports in */
    void *pub;                    /* the status feed */
    msgpack_sbuffer events;       /* "task" events of this batch (packed maps) */
    size_t nevents;               /* their number */
    int64_t *dirty;               /* jobs whose view changed since the last publish */
    size_t ndirty, capdirty;
    sink_ack_t *acks;             /* acks owed for the current batch */
    size_t nacks, capacks;
    int64_t sec;                  /* the second being counted */
    int64_t completed;            /* completions in it */
    uint32_t hist[FARM_HIST_N];   /* their latencies */
    int64_t duplicates;           /* results received for completed tasks */
    int64_t *done;                /* open-addressing set of task ids with a result in this batch */
    size_t capdone;               /* its size (a power of two), 0 when empty */
} sink_t;

/* ---- sink_results.c ---- */
/* Apply one frame of reports (untrusted bytes, one or more messages one
 * after another) inside the open transaction; owed acks and events are
 * queued. Bytes that cannot be framed are logged and the rest of the frame
 * dropped. Returns 0, or FARM_ESTORE when the batch
 * must be rolled back. */
int sink_apply(sink_t *s, const void *buf, size_t len);
/* Note which tasks have a result among the n reports of a batch, so that
 * sink_apply skips their start and progress reports (the result carries
 * the start time; a noop's start would only be overwritten). */
void sink_batch_scan(sink_t *s, zmq_msg_t *msgs, size_t n);
/* After COMMIT: send the queued acks. After ROLLBACK: forget them. */
void sink_acks_flush(sink_t *s, bool committed);

/* ---- sink_feed.c ---- */
/* Store change hook: queue a task event and mark the job dirty. */
void sink_on_change(void *ud, const farm_change_t *c);
/* Publish the task events of the batch (and drop them after ROLLBACK). */
void sink_events_flush(sink_t *s, bool committed);
/* Publish one message on topic with an encoded body. */
void sink_publish(sink_t *s, const char *topic, const void *body, size_t len);
/* Mark a job's view as changed. */
void sink_dirty(sink_t *s, int64_t job);
/* Publish the views of dirty jobs (called at most 10 times a second). */
void sink_jobs_flush(sink_t *s);
/* Count a completion and its latency; flush the second's figures. */
void sink_perf_count(sink_t *s, int64_t latency_ms);
void sink_perf_flush(sink_t *s, bool force);

#endif
