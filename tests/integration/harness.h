/* harness: a real farm for integration tests.
 *
 * h_new makes a temp folder and picks four free loopback ports; h_start_*
 * start the real programs (ventilator, sink, workers) with their logs in
 * the folder; h_call sends a front-door request written as JSON (readable
 * in the test) and returns the decoded reply. Waiting is always polling
 * with a deadline, never a sleep. Every process started is stopped by pid
 * in h_free (SIGTERM, then SIGKILL), and each child dies with the test
 * process (PR_SET_PDEATHSIG) if the test itself crashes.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "farm_config.h"
#include "farm_msg.h"

#define H_MAX_PROCS 32

typedef struct {
    pid_t pid;       /* 0 when not running */
    char name[64];   /* for logs: "vent", "sink", "w1" ... */
    char log[300];   /* its stderr and stdout */
} h_proc_t;

typedef struct h h_t;
struct h {
    char dir[128];             /* the test's temp folder */
    char db[200];              /* the database path */
    farm_endpoints_t ep;       /* the farm's endpoints on loopback */
    char ports[4][8];          /* the four ports */
    h_proc_t procs[H_MAX_PROCS];
    int nprocs;
    void *client;              /* farm_client_t to the front door */
    msgpack_zone zone;         /* the last reply's objects */
    msgpack_object reply;      /* the last reply */
    farm_error_t err;          /* the last error */
};

/* A fresh farm description (nothing running yet). Aborts the test on failure. */
h_t *h_new(void);
/* Stop everything, print the logs when keep_logs or on failure, remove the folder. */
void h_free(h_t **h);

/* Start a program of the build with the farm's four endpoint flags plus
 * the NULL-terminated extra args. name: log label. Returns its slot. */
int h_start(h_t *h, const char *prog, const char *name, ...);
/* Start a whole command line (argv NULL-terminated, argv[0] looked up in
 * PATH), without the endpoint flags: for wrappers like `ip netns exec`. */
int h_start_cmd(h_t *h, const char *name, const char *const *argv);
int h_start_vent(h_t *h, ...);  /* farm-ventilator --db DB ... */
int h_start_sink(h_t *h, ...);  /* farm-sink --db DB ... */
int h_start_worker(h_t *h, const char *name, int slots, ...); /* farm-worker --name --slots ... */
/* Start ventilator, sink and n workers of `slots` slots, exec allowed;
 * waits until the front door answers and the n workers are alive. */
void h_start_farm(h_t *h, int nworkers, int slots);
/* Wait (10 s each, failing the test) until the front door answers and
 * nworkers workers are alive. */
void h_wait_up(h_t *h, int nworkers);

/* Stop process slot i with sig and wait (deadline ms) for it to exit.
 * Returns its exit status (>= 0), 128+signal, or -1 when it did not exit. */
int h_stop(h_t *h, int i, int sig, int deadline_ms);

/* Send a request written as JSON (printf format). Returns 0 or the
 * FARM_E* code of the reply; h->reply holds the reply until the next call. */
int h_call(h_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* h_call that must succeed: fails the test with the error otherwise. */
const msgpack_object *h_ok(h_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Values by dotted path ("task.state", "tasks.0", "counts.completed"). */
const msgpack_object *h_get(const msgpack_object *o, const char *path);
int64_t h_int(const msgpack_object *o, const char *path);       /* fails the test if not an int */
const char *h_str(const msgpack_object *o, const char *path);   /* static buffer; "(nil)" for nil */
bool h_nil(const msgpack_object *o, const char *path);

/* Poll `status` of a task until its state is `state` (deadline ms).
 * Returns true when reached. */
bool h_wait_task(h_t *h, int64_t task, const char *state, int deadline_ms);
/* Poll until a job is final; returns its state name (static) or "timeout". */
const char *h_wait_job(h_t *h, int64_t job, int deadline_ms);
/* Poll `workers` until n are alive. */
bool h_wait_workers(h_t *h, int n, int deadline_ms);

/* How much slower than a release build this build runs: 4 under ASan and
 * UBSan, else 1. Only for the few bounds that are about the farm's own
 * overhead, never for the limits an issue fixes. */
int h_slow(void);
/* Monotonic ms. */
int64_t h_now(void);
/* Path of a build binary (static buffer). */
const char *h_bin(const char *prog);
/* Run a shell command with output captured into out (n bytes); returns exit status. */
int h_sh(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
