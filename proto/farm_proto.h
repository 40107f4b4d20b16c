/* farm_proto: every message of the farm, declared once.
 *
 * The front-door requests (shared/spec: front-door.md, documented for users
 * in proto/PROTOCOL.md) and the internal messages between ventilator,
 * workers and sink each have a C struct and a field table here. The one
 * validating decoder of farm_msg reads them; the packers below write the
 * internal ones, so sender and receiver cannot drift apart. Limits that an
 * operator configures are patched into the tables by farm_proto_set_limits.
 *
 * Internal message kinds carry their kind in key "m":
 *   worker -> ventilator  hb      heartbeat and credit (full), every second
 *                         ready   credit only, when a slot frees
 *                         give    tasks given back unstarted (after a revoke)
 *   ventilator -> worker  welcome a new ventilator epoch: reset sequence
 *                         task    run this (seq numbers the epoch's sends)
 *                         cancel  stop this task
 *                         revoke  give back up to n tasks waiting for a slot
 *   worker -> sink        start, prog, result
 *   ventilator -> sink    pub     republish this on the status feed
 *   sink -> worker        (feed topic "ack/<worker>") which results are stored
 */
#ifndef FARM_PROTO_H
#define FARM_PROTO_H

#include "farm_config.h"
#include "farm_msg.h"

#define FARM_PROTO_VERSION 1
#define FARM_TYPE_MAX 64

/* Records a result may carry to the sink (see farm_pack_result_records);
 * farm_plugin.h's FARM_TASK_RECORDS_MAX must agree. */
#define FARM_RESULT_RECORDS_MAX 100000
/* Records of one ingest task: the ventilator refuses more at submit
 * (limit name "max_records") and the ingest handler checks again. */
#define FARM_INGEST_MAX_RECORDS 1000

/* ---- front door ------------------------------------------------------- */

typedef struct {
    farm_str_t op; /* the operation */
    int64_t v;     /* protocol version, 1 */
} farm_req_head_t;

typedef struct {
    const msgpack_object *tasks; /* array of task specs */
    farm_str_t name;             /* job name or NULL */
    farm_str_t key;              /* idempotency key or NULL */
    int64_t priority, max_attempts, timeout_ms, delay_ms; /* task defaults */
} farm_req_submit_t;

typedef struct {
    farm_str_t type;             /* handler name, [a-z0-9_.-]{1,64} */
    const msgpack_object *args;  /* handler input or NULL */
    int64_t priority, max_attempts, timeout_ms, delay_ms;
} farm_req_task_t;
/* bits of `present` for farm_req_task_t fields that may inherit a default */
#define FARM_TASK_HAS_PRIORITY (1u << 2)
#define FARM_TASK_HAS_MAX_ATTEMPTS (1u << 3)
#define FARM_TASK_HAS_TIMEOUT (1u << 4)
#define FARM_TASK_HAS_DELAY (1u << 5)

typedef struct {
    int64_t task; /* present bit 0 */
    int64_t job;  /* present bit 1 */
} farm_req_ids_t;

typedef struct {
    int64_t job;        /* 0: any */
    farm_str_t state;   /* NULL: any */
    farm_str_t type;    /* NULL: any */
    int64_t after;      /* ids greater than this */
    int64_t limit;      /* 1..1000 */
} farm_req_list_t;

typedef struct {
    farm_str_t state;
    int64_t after;
    int64_t limit;
} farm_req_jobs_t;

/* ---- internal --------------------------------------------------------- */

typedef struct {
    farm_str_t m;                 /* "hb" or "ready" */
    farm_str_t id;                /* worker id (hb) */
    farm_str_t host;              /* host name (hb) */
    int64_t pid, slots;           /* (hb) */
    const msgpack_object *types;  /* array of str (hb) */
    int64_t free;                 /* free slots now */
    int64_t epoch;                /* ventilator epoch the seq belongs to, 0 none */
    int64_t seq;                  /* last task seq received in that epoch */
    const msgpack_object *held;   /* array of task ids held (hb) */
    farm_str_t state;             /* "alive" or "draining" (hb) */
    int64_t completed, failed;    /* counters since start (hb) */
    int64_t idle;                 /* slots with nothing to do (of free, which counts queue room too) */
    int64_t queued;               /* tasks received, waiting for a slot */
    int64_t done;                 /* attempts finished since start (ready, hb), -1 absent */
} farm_msg_hb_t;

typedef struct {
    farm_str_t m;                 /* "welcome", "task" or "cancel" */
    int64_t epoch, seq;
    int64_t id, job;              /* task id (task, cancel), job id */
    farm_str_t type;
    const msgpack_object *args;
    int64_t attempt, timeout_ms;
    int64_t n;                    /* revoke: how many waiting tasks to give back */
    int64_t priority;             /* task: orders a worker's waiting tasks like dispatch does */
} farm_msg_task_t;

typedef struct {
    farm_str_t m;                 /* "start", "prog", "result" or "pub" */
    int64_t task, attempt;
    farm_str_t worker;
    int64_t ms;                   /* event time (start, prog) */
    int64_t pct;                  /* prog */
    farm_str_t msg;               /* prog message */
    bool ok;                      /* result: the attempt succeeded */
    bool cancelled;               /* result: the attempt was stopped by a cancel */
    const msgpack_object *result; /* result value */
    farm_str_t error;             /* result: why it failed */
    int64_t started_ms, finished_ms;
    farm_str_t topic;             /* pub */
    const msgpack_object *body;   /* pub */
    const msgpack_object *records; /* result, optional: [[idx, bin], ...] to store with an ok result
                                      (idx an int >= 0, bin one encoded record); at most
                                      FARM_RESULT_RECORDS_MAX */
} farm_msg_report_t;

/* Patch the configurable limits into the tables. Call once at start. */
void farm_proto_set_limits(const farm_limits_t *l);

/* Decoders: 0 or FARM_EBADREQ/FARM_ETOOLARGE with e filled. */
int farm_req_head_decode(const msgpack_object *o, farm_req_head_t *r, farm_error_t *e);
int farm_req_submit_decode(const msgpack_object *o, farm_req_submit_t *r, uint64_t *present, farm_error_t *e);
int farm_req_task_decode(const msgpack_object *o, farm_req_task_t *r, uint64_t *present, const char *prefix,
                         farm_error_t *e);
int farm_req_ids_decode(const msgpack_object *o, farm_req_ids_t *r, uint64_t *present, farm_error_t *e);
int farm_req_list_decode(const msgpack_object *o, farm_req_list_t *r, farm_error_t *e);
int farm_req_jobs_decode(const msgpack_object *o, farm_req_jobs_t *r, farm_error_t *e);
int farm_msg_hb_decode(const msgpack_object *o, farm_msg_hb_t *r, farm_error_t *e);
int farm_msg_task_decode(const msgpack_object *o, farm_msg_task_t *r, farm_error_t *e);
int farm_msg_report_decode(const msgpack_object *o, farm_msg_report_t *r, farm_error_t *e);

/* True when s is a valid task type name: 1..64 bytes of [a-z0-9_.-]. */
bool farm_type_valid(farm_str_t s);

/* Packers of the internal messages. Each packs one complete map. */
void farm_pack_hb(msgpack_packer *pk, const farm_msg_hb_t *m, const char *const *types, size_t ntypes,
                  const int64_t *held, size_t nheld);
void farm_pack_ready(msgpack_packer *pk, int64_t free, int64_t epoch, int64_t seq, int64_t idle, int64_t queued,
                     int64_t done);
/* ventilator -> worker: give back up to n tasks that wait for a slot. */
void farm_pack_revoke(msgpack_packer *pk, int64_t n);
/* worker -> ventilator: these tasks were given back, never started. */
void farm_pack_give(msgpack_packer *pk, const int64_t *ids, size_t n, int64_t epoch, int64_t seq, int64_t free,
                    int64_t idle, int64_t queued);
void farm_pack_welcome(msgpack_packer *pk, int64_t epoch);
/* args_raw: the task's args as stored MessagePack bytes (NULL: nil). */
void farm_pack_task(msgpack_packer *pk, const farm_msg_task_t *t, const void *args_raw, size_t args_len);
void farm_pack_cancel(msgpack_packer *pk, int64_t task);
void farm_pack_start(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, int64_t ms);
void farm_pack_prog(msgpack_packer *pk, int64_t task, int64_t attempt, int pct, const char *msg, int64_t ms);
/* result_raw: encoded result value (NULL: nil); error NULL when ok. */
void farm_pack_result(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, bool ok, bool cancelled,
                      const void *result_raw, size_t result_len, const char *error, int64_t started_ms,
                      int64_t finished_ms);
/* farm_pack_result plus "records": records_raw is an encoded array of
 * [idx, bin] pairs (NULL: the key is left out, as farm_pack_result does).
 * The sink stores them with the result when this result is the task's
 * first successful one, and only then. */
void farm_pack_result_records(msgpack_packer *pk, int64_t task, int64_t attempt, const char *worker, bool ok,
                              bool cancelled, const void *result_raw, size_t result_len, const char *error,
                              int64_t started_ms, int64_t finished_ms, const void *records_raw,
                              size_t records_len);
/* One event of the status feed's "task" topic (spec section 4). worker NULL: nil. */
void farm_pack_task_event(msgpack_packer *pk, int64_t id, int64_t job, int state, int progress, int64_t attempt,
                          const char *worker, int64_t ms);
/* The body of a "task" message: {"events": [...]} around n events already
 * packed by farm_pack_task_event into events[0..len). */
void farm_pack_task_events(msgpack_packer *pk, const void *events, size_t len, size_t n);
/* pub: topic and an encoded body. */
void farm_pack_pub(msgpack_packer *pk, const char *topic, const void *body_raw, size_t body_len);

#endif
