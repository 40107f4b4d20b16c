/* farm_plugin.h: the handler API of farm-worker. Public header.
 *
 * A handler runs the tasks of one type. The worker calls it on one of its
 * slot threads with the task's args (a MessagePack object it borrows) and a
 * packer for the result, and reports what it returns: 0 is a successful
 * attempt, anything else a failed one. The built-in types (noop, sleep,
 * exec) go through this API exactly as plugins do.
 *
 * A plugin is a shared object that exports two functions:
 *
 *     int farm_plugin_api_version(void);     returns FARM_PLUGIN_API_VERSION
 *     const farm_handler_t *farm_plugin_handlers(size_t *n);
 *
 * The worker refuses a plugin built against another API version. The array
 * of handlers and the strings it points to must live as long as the process.
 *
 * Stopping is cooperative. When a task is cancelled, reaches its timeout or
 * is stopped because the worker drains, farm_task_stopping() becomes true and
 * the fd of farm_task_stop_fd() becomes readable; a handler that blocks
 * should poll that fd with whatever it waits on and return soon after. The
 * worker then reports the stop's reason ("cancelled", "timeout after N ms",
 * "worker draining: grace period over") as the error, whatever the handler
 * returned, and keeps the result value the handler packed, if any. A
 * handler that never returns holds its slot forever: the worker cannot kill
 * a thread.
 *
 * Records. A handler that produces data for the farm's database (ingest
 * does) hands each record to farm_task_record(); the worker carries them to
 * the sink with the result, which stores them with the task's first
 * successful result only.
 *
 * Errors are results. A handler that returns non-zero, packs anything but
 * exactly one MessagePack value, or packs a result over the size limit
 * fails its attempt with a message saying so; the task is retried like any
 * failed attempt. A handler that crashes takes its whole worker down: the
 * ventilator declares the worker lost and retries the task elsewhere, and
 * after max_attempts the task fails.
 *
 * Building a plugin outside the farm's tree:
 *
 *     cc -shared -fPIC -o my.so my.c $(pkg-config --cflags farm-plugin)
 *     farm-worker --plugin ./my.so --list-types
 *
 * The farm_task_* functions are not in any library: they resolve against
 * the farm-worker executable that loads the plugin.
 *
 * Threads. A handler may run on several slots at once, so it must be
 * reentrant. The farm_task_* functions may be called from any thread, but
 * only while the handler's call is in progress: the context is reused for
 * the slot's next task once the handler returns.
 */
#ifndef FARM_PLUGIN_H
#define FARM_PLUGIN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change of this header. */
#define FARM_PLUGIN_API_VERSION 1

/* The running task, as seen by its handler. Opaque; owned by the worker. */
typedef struct farm_task_ctx farm_task_ctx_t;

/* Run one task.
 *   args   the task's args, borrowed for the call; a nil object when the
 *          task has none. Untrusted input: check every type and bound.
 *   result a packer writing to a msgpack_sbuffer. Pack ONE value into it
 *          (a map, usually) or nothing at all (the result is then nil).
 *          Zero values or more than one is reported as a handler failure.
 * Returns 0 for success, non-zero for a failed attempt; say why with
 * farm_task_fail() (without it the error is "<type> failed"). A failing
 * handler may still pack a result value: it is reported with the error. */
typedef int (*farm_handler_fn)(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result);

/* One task type a worker offers. */
typedef struct {
    const char *type;    /* task type: 1-64 bytes of [a-z0-9_.-], unique per worker */
    farm_handler_fn run; /* the handler */
    void *ud;            /* the handler's own data, see farm_task_handler_data(); may be NULL */
} farm_handler_t;

/* Report progress: pct is clamped to 0..100, msg (may be NULL) is copied and
 * cut to 255 bytes. Cheap and never blocks: the worker sends at most ten
 * updates a second per task, always the last one and always 100. */
void farm_task_progress(farm_task_ctx_t *ctx, int pct, const char *msg);

/* True once the task has been cancelled, has reached its timeout or is
 * stopped by a draining worker: the handler should return soon. */
bool farm_task_stopping(const farm_task_ctx_t *ctx);

/* An fd that becomes readable when farm_task_stopping() becomes true. Only
 * poll it: never read, write or close it. */
int farm_task_stop_fd(const farm_task_ctx_t *ctx);

/* The task's deadline in CLOCK_MONOTONIC milliseconds, 0 when it has no
 * timeout. */
int64_t farm_task_deadline_ms(const farm_task_ctx_t *ctx);

/* The task's timeout as given by its submitter, in ms; 0 for none. */
int64_t farm_task_timeout_ms(const farm_task_ctx_t *ctx);

/* The task's id, its job's id and the attempt number (1 for the first). */
int64_t farm_task_id(const farm_task_ctx_t *ctx);
int64_t farm_task_job(const farm_task_ctx_t *ctx);
int64_t farm_task_attempt(const farm_task_ctx_t *ctx);

/* The ud of the farm_handler_t that runs this task. */
void *farm_task_handler_data(const farm_task_ctx_t *ctx);

/* Set the error reported when the handler returns non-zero (printf format,
 * cut to 1023 bytes). The last call wins. */
void farm_task_fail(farm_task_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records a task may keep with its result (see farm_task_record). */
#define FARM_TASK_RECORDS_MAX 100000

/* Keep a record to be stored in the farm's database (table records: task,
 * idx, data) with this attempt's result. Records are stored only when the
 * attempt succeeds and its result is the one the farm keeps (the first
 * successful one), so a task retried after a crash stores its records once;
 * records of a failed attempt are dropped. idx (>= 0) names the record
 * within the task, e.g. its index in the input: a second record with the
 * same idx is ignored when stored. *record is packed (copied) at once, so
 * it may be freed on return. Records count against the result's size limit
 * (max-frame) with the result value. Any thread may call this while the
 * handler runs. Returns 0, or -1 when ctx or record is NULL, idx < 0, the
 * task already has FARM_TASK_RECORDS_MAX records, the size limit is passed
 * or memory ran out; the record is then not kept, and farm_task_fail() may
 * say why. */
int farm_task_record(farm_task_ctx_t *ctx, int64_t idx, const msgpack_object *record);

/* The two functions a plugin exports, by name and by type. */
#define FARM_PLUGIN_VERSION_SYMBOL "farm_plugin_api_version"
#define FARM_PLUGIN_HANDLERS_SYMBOL "farm_plugin_handlers"
typedef int (*farm_plugin_api_version_fn)(void);
typedef const farm_handler_t *(*farm_plugin_handlers_fn)(size_t *n);

/* What a plugin defines (declared here so a definition that does not match
 * fails to compile). farm_plugin_api_version returns
 * FARM_PLUGIN_API_VERSION; farm_plugin_handlers sets *n to the number of
 * handlers (1..256) and returns them (static storage). */
int farm_plugin_api_version(void);
const farm_handler_t *farm_plugin_handlers(size_t *n);

#ifdef __cplusplus
}
#endif

#endif
