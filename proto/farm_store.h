/* farm_store: the farm's SQLite database, its one schema and every
 * statement that touches it. The ventilator and the sink both link it.
 *
 * The database is in WAL mode so the two processes read without blocking
 * each other; every write runs in a BEGIN IMMEDIATE transaction with a busy
 * timeout, so a crash at any moment leaves either all of a change or none.
 * synchronous=NORMAL: a committed transaction survives the crash of any
 * process (the WAL is in the kernel before COMMIT returns); only a power
 * loss may drop the last commits, unless the store is opened with sync_full.
 *
 * A task row holds its external state (the six states of the spec) plus
 * its lease: `worker` is set while a worker holds it (dispatched, or
 * running). A pending task with a worker is "dispatched, not started".
 * `attempts` counts dispatched attempts; each report carries the attempt
 * number it belongs to, so a stale report cannot move a newer attempt.
 * Job counters and global totals are kept by one trigger on task updates,
 * so a job view and the stats are O(1) whatever the number of tasks.
 *
 * Every function that changes a task's state reports the change through
 * the change hook (farm_store_on_change), which the programs turn into
 * status-feed events. All SQL goes through prepared statements.
 *
 * Ownership: the store owns its sqlite handle and statements. Strings
 * passed in are copied by SQLite. Callbacks get borrowed pointers valid
 * only during the call.
 */
#ifndef FARM_STORE_H
#define FARM_STORE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "farm_hist.h"
#include "farm_msg.h"

typedef struct farm_store farm_store_t;

/* A change of a task's state or progress, for the status feed. */
typedef struct {
    int64_t id, job;
    int state;
    int progress;
    int64_t attempt;
    const char *worker; /* NULL when none */
    int64_t ms;
} farm_change_t;

typedef void(farm_change_fn)(void *ud, const farm_change_t *c);

/* Retry back-off: delay of attempt n = min(cap, base * factor^(n-1)) +/- jitter %. */
typedef struct {
    int64_t base_ms;
    double factor;
    int64_t cap_ms;
    int jitter_pct;
} farm_backoff_t;

/* A task spec ready to store. */
typedef struct {
    farm_str_t type;
    const void *args; /* encoded MessagePack, NULL for nil */
    size_t args_len;
    int64_t priority, max_attempts, timeout_ms, delay_ms;
} farm_task_spec_t;

/* A task ready to dispatch. Pointers borrowed, valid during the callback. */
typedef struct {
    int64_t id, job, priority, timeout_ms;
    const char *type;
    const void *args;
    size_t args_len;
} farm_ready_t;

/* What the sink stores from a worker's result. */
typedef struct {
    int64_t task, attempt;
    const char *worker;
    bool ok, cancelled;
    const void *result; /* encoded MessagePack or NULL */
    size_t result_len;
    const char *error;  /* NULL when ok */
    int64_t started_ms, finished_ms;
} farm_result_in_t;

typedef enum {
    FARM_RESULT_STORED,    /* changed the task (completed, retrying, failed, cancelled) */
    FARM_RESULT_DUPLICATE, /* the task already had its result: counted, not stored */
    FARM_RESULT_STALE,     /* an older attempt's failure, or the task is gone: recorded only */
} farm_result_outcome_t;

/* Open (creating if needed) the database at path. Returns NULL and sets
 * *err (a FARM_E* code) on failure, logging why. */
farm_store_t *farm_store_open(const char *path, bool sync_full, int *err);

/* Checkpoint (when `checkpoint`) and close. Safe on NULL; nulls *s. */
void farm_store_close(farm_store_t **s, bool checkpoint);

/* A thread with a connection of its own that checkpoints the database
 * (PASSIVE: it never blocks a writer) every interval_ms, so that no commit
 * of the ventilator or the sink pays for copying the WAL back and its
 * fsync. The connections of farm_store_open checkpoint by themselves only
 * when the WAL grows past FARM_STORE_WAL_FALLBACK pages (this thread gone
 * or behind). NULL when it cannot start (logged; the fallback remains). */
#define FARM_STORE_WAL_FALLBACK 20000
typedef struct farm_checkpointer farm_checkpointer_t;
farm_checkpointer_t *farm_checkpointer_start(const char *path, int64_t interval_ms);
/* Stop the thread and close its connection; safe on NULL; nulls *c. */
void farm_checkpointer_stop(farm_checkpointer_t **c);

/* Set the hook called on every task state/progress change (may be NULL). */
void farm_store_on_change(farm_store_t *s, farm_change_fn *fn, void *ud);

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0 or FARM_ESTORE. */
int farm_store_begin(farm_store_t *s);
int farm_store_commit(farm_store_t *s);
void farm_store_rollback(farm_store_t *s);

/* The back-off policy stored in the database (written by the ventilator,
 * read by whoever fails an attempt). */
int farm_store_set_backoff(farm_store_t *s, const farm_backoff_t *b);
void farm_store_get_backoff(farm_store_t *s, farm_backoff_t *b);

/* ---- submit (inside a transaction) -------------------------------------- */

/* Job id of an idempotency key: 0 and *job, or FARM_ENOTFOUND. */
int farm_store_job_by_key(farm_store_t *s, farm_str_t key, int64_t *job);
/* New job with `total` tasks to follow. */
int farm_store_job_insert(farm_store_t *s, farm_str_t name, farm_str_t key, int64_t now, int64_t total, int64_t *job);
int farm_store_task_insert(farm_store_t *s, int64_t job, const farm_task_spec_t *t, int64_t now, int64_t *id);
/* Pack the ids of a job's tasks as an array, in id order. */
int farm_store_pack_job_task_ids(farm_store_t *s, int64_t job, msgpack_packer *pk);

/* ---- views ------------------------------------------------------------- */

/* Why a pending, undispatched task of `type` is waiting (NULL: no reason). */
typedef const char *(farm_why_fn)(void *ud, const char *type);

/* TASKVIEW of task id (with `history` when history is true).
 * 0, FARM_ENOTFOUND or FARM_ESTORE. */
int farm_store_pack_task(farm_store_t *s, int64_t id, bool history, farm_why_fn *why, void *ud, msgpack_packer *pk);
/* JOBVIEW of job id. */
int farm_store_pack_job(farm_store_t *s, int64_t id, msgpack_packer *pk);
/* The whole `result` reply: {"ok", "state", "result", "error"}. */
int farm_store_pack_result(farm_store_t *s, int64_t id, msgpack_packer *pk);
/* The whole `list` reply. job 0, state -1, type NULL: no filter. */
int farm_store_pack_list(farm_store_t *s, int64_t job, int state, farm_str_t type, int64_t after, int64_t limit,
                         farm_why_fn *why, void *ud, msgpack_packer *pk);
/* The whole `jobs` reply. state -1: any; else one of the job states
 * (the task state numbers; pending/running/completed/failed/cancelled). */
int farm_store_pack_jobs(farm_store_t *s, int state, int64_t after, int64_t limit, msgpack_packer *pk);
/* Tasks by state over the whole farm, and the number of jobs. */
int farm_store_counts(farm_store_t *s, int64_t counts[6], int64_t *jobs);
/* Job exists? 0 or FARM_ENOTFOUND. */
int farm_store_job_exists(farm_store_t *s, int64_t job);

/* ---- operator actions (each its own transaction) ------------------------ */

/* Called for each running or dispatched task that must be stopped on its worker. */
typedef void(farm_stop_fn)(void *ud, int64_t task, const char *worker);

/* Cancel task (job 0) or every non-final task of job (task 0).
 * *n: tasks cancelled or being cancelled. FARM_ENOTFOUND; FARM_ECONFLICT
 * for a single task already final. */
int farm_store_cancel(farm_store_t *s, int64_t task, int64_t job, int64_t now, farm_stop_fn *stop, void *ud,
                      int64_t *n);
/* Failed and cancelled tasks back to pending with a fresh budget. */
int farm_store_retry(farm_store_t *s, int64_t task, int64_t job, int64_t now, int64_t *n);
/* Remove a job whose tasks are all final. FARM_ECONFLICT otherwise. */
int farm_store_delete_job(farm_store_t *s, int64_t job, int64_t *n);

/* ---- dispatch (ventilator) --------------------------------------------- */

typedef int(farm_ready_fn)(void *ud, const farm_ready_t *t);
/* Up to limit dispatchable tasks of type (pending, no worker, due), best
 * first: priority, then id. The callback returns non-zero to stop. */
int farm_store_ready(farm_store_t *s, const char *type, int64_t now, int64_t limit, farm_ready_fn *fn, void *ud);
/* Lease task to worker (inside a transaction). *attempt gets the attempt
 * number. FARM_ECONFLICT when it is no longer dispatchable. */
int farm_store_claim(farm_store_t *s, int64_t task, const char *worker, int64_t *attempt);
/* Lease the tasks[0..n) to worker in one statement (inside a transaction):
 * fn(ud, task, attempt) for each one leased, in no particular order; a
 * task not named back is no longer dispatchable. Returns 0 or an error. */
typedef void farm_claimed_fn(void *ud, int64_t task, int64_t attempt);
int farm_store_claim_many(farm_store_t *s, const int64_t *tasks, size_t n, const char *worker,
                          farm_claimed_fn *fn, void *ud);
/* Retrying tasks whose back-off is over become pending. *n changed. */
int farm_store_promote_due(farm_store_t *s, int64_t now, int64_t *n);
/* Earliest due time among retrying or delayed pending tasks, or INT64_MAX. */
int64_t farm_store_next_due(farm_store_t *s, int64_t now);
/* Number of pending tasks (for the busy limit). */
int64_t farm_store_pending(farm_store_t *s);

typedef void(farm_held_fn)(void *ud, int64_t task, int state);
/* Tasks the database says worker holds (dispatched or running). */
int farm_store_worker_tasks(farm_store_t *s, const char *worker, farm_held_fn *fn, void *ud);
/* The worker no longer holds task. A running task fails its attempt with
 * reason. A dispatched one (no start report) goes back to pending without
 * counting an attempt when `maybe_started` is false (a live worker says it
 * does not hold it); when true (the worker was lost, its start report may
 * have died with it) the attempt counts, so a task that kills every worker
 * it reaches still ends failed. Inside a transaction. */
int farm_store_release(farm_store_t *s, int64_t task, const char *worker, const char *reason, bool maybe_started,
                       int64_t now);
/* Every worker that holds a task (dispatched or running). */
int farm_store_lease_holders(farm_store_t *s, void (*fn)(void *ud, const char *worker), void *ud);
/* Release every task worker holds (it was lost). *n released. */
int farm_store_release_worker(farm_store_t *s, const char *worker, const char *reason, int64_t now, int64_t *n);

/* ---- reports (sink; inside a transaction) ------------------------------- */

int farm_store_started(farm_store_t *s, int64_t task, int64_t attempt, const char *worker, int64_t ms);
int farm_store_progress(farm_store_t *s, int64_t task, int64_t attempt, int pct, farm_str_t msg, int64_t ms);
/* Store a result. *outcome says what happened; *created_ms (may be NULL)
 * gets the task's creation time when it became final now (completed, or
 * failed with its attempts spent), else 0. */
int farm_store_result(farm_store_t *s, const farm_result_in_t *r, int64_t now, farm_result_outcome_t *outcome,
                      int64_t *created_ms);

/* ---- records (ingest) --------------------------------------------------- */

/* Store record idx (>= 0) of task: len > 0 bytes of MessagePack, copied.
 * A record already stored under (task, idx) is kept and this one ignored,
 * so storing twice is harmless. Inside a transaction (the sink calls it in
 * the one that stored the task's first successful result). Returns 0,
 * FARM_EBADREQ for a bad argument or FARM_ESTORE. */
int farm_store_records_put(farm_store_t *s, int64_t task, int64_t idx, const void *data, size_t len);

/* Called per stored record of a task, in idx order; data is borrowed for
 * the call. Return non-zero to stop. */
typedef int(farm_record_fn)(void *ud, int64_t idx, const void *data, size_t len);
/* The stored records of task. Returns 0 (also when there are none or fn
 * stopped) or FARM_ESTORE. */
int farm_store_records_each(farm_store_t *s, int64_t task, farm_record_fn *fn, void *ud);

/* ---- performance figures -------------------------------------------- */

/* Add one second's completions and latency histogram. */
int farm_store_perf_add(farm_store_t *s, int64_t sec, int64_t completed, const uint32_t hist[FARM_HIST_N]);
/* Completions in the last `secs` seconds before now, and the merged
 * latency histogram of the last 60 s. */
int farm_store_perf_read(farm_store_t *s, int64_t now_sec, int64_t *c10, int64_t *c60, uint32_t hist[FARM_HIST_N]);

/* PRAGMA integrity_check == "ok"? 0 or FARM_ESTORE. */
int farm_store_check(farm_store_t *s);

#endif
