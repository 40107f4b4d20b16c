/* worker_handlers: the task types built into farm-worker.
 *
 *   noop   does nothing; result nil.
 *   sleep  args {"ms": 0..86400000} (absent: 0); sleeps, waking on a stop;
 *          progress every 10 % for sleeps of 200 ms or more; result
 *          {"slept_ms": N}.
 *   exec   args {"argv": [str, ...], "env": {str: str}, "cwd": str,
 *          "stdin": bin or str}; runs a program through worker_exec. Only
 *          registered when the operator allows it (--allow-exec).
 *   ingest, interest, text   see handler_ingest.h, handler_interest.h and
 *          handler_text.h (one file each).
 *
 * They are ordinary farm_plugin.h handlers, registered in a
 * worker_registry like any plugin's.
 */
#ifndef WORKER_HANDLERS_H
#define WORKER_HANDLERS_H

#include "handler_ingest.h"
#include "worker_allow.h"
#include "worker_registry.h"

#include <stdbool.h>
#include <stdint.h>

/* What the built-in handlers need from the worker's flags. */
typedef struct {
    bool allow_exec;       /* register exec */
    worker_allow_t exec_allow; /* the programs exec may run (--allow-exec[=LIST]) */
    int64_t max_output;    /* bytes of stdout and of stderr an exec task keeps (--max-output) */
    int64_t kill_grace_ms; /* SIGTERM to SIGKILL of a stopped exec task (--kill-grace-ms) */
    worker_ingest_cfg_t ingest; /* ingest's simulated external call (--ingest-pause-ms) */
} worker_handlers_cfg_t;

/* Register noop, sleep, ingest, interest, text and, when cfg->allow_exec,
 * exec into reg, in that order. cfg is borrowed by the exec and ingest
 * handlers and must outlive every task. Returns 0 or the error of
 * worker_registry_add(). */
int worker_handlers_register(worker_registry_t *reg, const worker_handlers_cfg_t *cfg);

#endif
