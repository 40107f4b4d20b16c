/* handler_ingest: the ingest task type, and the record schemas it checks.
 *
 *   ingest  args {"schema": NAME or {inline schema}, "records": [record, ...]}
 *           with at most FARM_INGEST_MAX_RECORDS records (the ventilator
 *           refuses more at submit). Every record is checked against the
 *           schema; accepted ones are handed to farm_task_record() under
 *           their index, so the sink stores them with the task's first
 *           successful result, once. After every 100 records the handler
 *           reports progress ("validated 300/1000") and makes a simulated
 *           external call: a pause of --ingest-pause-ms (default 500)
 *           that a cancel or timeout cuts short. Result:
 *             {"schema": name, "total": N, "accepted": A, "rejected": R,
 *              "rejections": [{"index": i, "reason": "..."}, ...]}
 *           Rejected records are results, not failures; bad args (no
 *           records array, an unknown or malformed schema) fail the attempt.
 *
 * A schema is a list of fields. Inline:
 *   {"name": "label" (optional),
 *    "fields": [{"name": "id", "type": "int"|"float"|"str"|"bool",
 *                "required": bool (default false),
 *                "min": n, "max": n          (int and float: value bounds),
 *                "min_len": n, "max_len": n  (str: length in characters),
 *                "pattern": "ERE"            (str: POSIX extended regex the
 *                                             WHOLE value must match)}, ...]}
 * A record is a map; a field not in the schema, a field given twice, a
 * missing required field or a value out of its bounds rejects the record
 * with the first reason found. nil counts as absent. Strings must be valid
 * UTF-8 without NUL. Built-in schemas by name: "student" (id int >= 1,
 * name str 1-100 characters and not blank, email a plausible address,
 * grade int 1-12, all required).
 *
 * The schema functions below are pure (no worker, no context) so tests can
 * call them directly. Patterns are compiled once per schema, that is once
 * per task, with regcomp(REG_EXTENDED | REG_NOSUB).
 */
#ifndef HANDLER_INGEST_H
#define HANDLER_INGEST_H

#include "farm_plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKER_SCHEMA_FIELDS_MAX 64   /* fields of one schema */
#define WORKER_SCHEMA_NAME_MAX 64     /* bytes of a field or schema name */
#define WORKER_SCHEMA_PATTERN_MAX 256 /* bytes of a pattern */
#define WORKER_INGEST_BATCH 100       /* records between progress reports and external calls */
#define WORKER_INGEST_REASON_MAX 256  /* bytes of a rejection reason, NUL included */

typedef struct worker_schema worker_schema_t;

/* What the ingest handler needs from the worker's flags; its farm_handler_t
 * ud points to one (NULL: no pause). */
typedef struct {
    int64_t pause_ms; /* the simulated external call after every 100 records (--ingest-pause-ms) */
} worker_ingest_cfg_t;

/* The schema args.schema describes: a string naming a built-in schema, or
 * an inline schema map (untrusted: every key is checked). Returns a new
 * schema the caller frees with worker_schema_destroy(), or NULL with a
 * message naming the field at fault in err (n bytes, NUL terminated). */
worker_schema_t *worker_schema_from(const msgpack_object *o, char *err, size_t n);

/* Free *p (patterns included) and set it to NULL; safe on NULL and twice. */
void worker_schema_destroy(worker_schema_t **p);

/* The schema's name: the built-in's, the inline "name", or "inline".
 * Borrowed, lives as long as s. */
const char *worker_schema_name(const worker_schema_t *s);

/* Check one record against s. Returns true when it is valid; otherwise
 * false with the reason in reason (n bytes, NUL terminated, printable
 * ASCII only: names from the record are sanitised). Reentrant on a schema
 * used by one thread at a time. */
bool worker_schema_check(const worker_schema_t *s, const msgpack_object *rec, char *reason, size_t n);

/* The ingest handler (farm_plugin.h); registered by worker_handlers. */
int worker_ingest_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result);

#endif
