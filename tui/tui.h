/* farm-tui: the live monitor of a farm (DESIGN.md §7).
 *
 * The program is a single-threaded event loop plus one helper thread.
 * The loop polls four things at once with zmq_poll: the terminal (keys),
 * the status feed (a SUB socket to the sink), the helper thread's inproc
 * socket (front-door replies) and a self-pipe written by signal handlers.
 * The helper thread (tui_door.c) owns the farm_client and performs one
 * front-door request at a time, so a farm that does not answer costs the
 * loop nothing: input and drawing go on while a request waits for its
 * 500 ms timeout.
 *
 * State lives in one tui_t. The model (tui_model.c) is what the farm looks
 * like: stats, jobs, workers, recent failures, the throughput history; it
 * is filled first from front-door replies and then kept live by the feed
 * (tui_feed.c). The UI state (which panel, which row, which detail view,
 * a pending confirmation, the filter) is beside it; tui_input.c changes it
 * from keys and tui_view.c draws both into curses windows once per frame.
 * Nothing here touches the database.
 *
 * Every string that arrives from the wire is copied into fixed-size
 * buffers with control characters replaced (tui_text_copy), so the view
 * never sends a terminal escape it did not mean to.
 */
#ifndef TUI_H
#define TUI_H

#include <curses.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "farm_config.h"
#include "farm_msg.h"
#include "farm_state.h"

#define TUI_SPARK_MAX 900      /* seconds of throughput history kept (15 minutes) */
#define TUI_FAIL_MAX 200       /* failures remembered for the failures panel */
#define TUI_NAME_MAX 96        /* bytes kept of a job or worker name */
#define TUI_TEXT_MAX 256       /* bytes kept of an error or message */
#define TUI_PAGE 100           /* tasks per page of the job view */
#define TUI_DOOR_TIMEOUT_MS 500 /* one front-door attempt; 0 retries */
#define TUI_POLL_MS 500        /* poll cycle of the front door */
#define TUI_FEED_STALE_MS 3000 /* no stats for this long: the feed is reconnecting */
#define TUI_FEED_REOPEN_MS 10000 /* no stats for this long: reopen the SUB socket */
#define TUI_MSG_MS 8000        /* an action's outcome stays on the status line this long */
#define TUI_MIN_COLS 80
#define TUI_MIN_LINES 24

/* Worker states of the wire, in display order. */
#define TUI_WSTATE_MAP(XX) XX(ALIVE, "alive") XX(DRAINING, "draining") XX(LOST, "lost")
typedef enum {
#define XX(e, s) TUI_W_##e,
    TUI_WSTATE_MAP(XX)
#undef XX
    TUI_W_UNKNOWN
} tui_wstate_t;

/* ---- the model ------------------------------------------------------ */

typedef struct {
    int64_t id;                    /* job id (> 0) */
    char name[TUI_NAME_MAX];       /* "" when the job has none */
    int state;                     /* FARM_TASK_* of the job's wire state, -1 unknown */
    int64_t total;                 /* tasks in the job */
    int64_t counts[FARM_STATE_COUNT]; /* tasks per state */
    int64_t progress;              /* 0..100 */
    int64_t created_ms, finished_ms; /* wall ms; finished 0 while not final */
    uint32_t sweep;                /* the jobs sweep that last saw it */
    int64_t touched_mono;          /* last update from any source (mono ms) */
} tui_job_t;

typedef struct {
    char id[TUI_NAME_MAX];         /* the worker's name */
    char host[TUI_NAME_MAX];       /* its host */
    int64_t pid, slots, busy;
    int64_t last_seen_ms;          /* wall ms of its last heartbeat */
    int64_t completed, failed;     /* tasks it finished */
    tui_wstate_t state;
    uint32_t gen;                  /* the workers reply that last listed it */
} tui_worker_t;

typedef struct {
    int64_t task, job, attempt;
    int64_t ms;                    /* wall ms of the failure */
    int state;                     /* FARM_TASK_FAILED or FARM_TASK_RETRYING */
    char worker[TUI_NAME_MAX];
    char error[TUI_TEXT_MAX];      /* the reason, once known */
    bool has_error;                /* error holds the front door's answer */
    bool asked;                    /* a status request for the reason was made */
} tui_fail_t;

typedef struct {
    /* Totals, from the feed's stats or the front door's stats reply. */
    bool have_stats;
    int64_t counts[FARM_STATE_COUNT];
    int64_t njobs, nworkers, slots, busy, p50, p99, uptime_s;
    double tp10, tp60;             /* completed tasks per second over 10 s / 60 s */
    int64_t feed_stats_mono;       /* arrival of the last stats on the feed; 0 never */
    int64_t feed_open_mono;        /* when the SUB socket was (re)opened */

    /* Throughput history: one sample a second, from stats on the feed. */
    double spark[TUI_SPARK_MAX];   /* ring */
    size_t spark_n, spark_head;    /* samples held; index of the next write */
    double rate_now;               /* the latest sample */
    int64_t spark_completed;       /* counts.completed at the last sample; -1 none */
    int64_t spark_mono;            /* its arrival */

    /* Jobs, sorted by id, newest (highest) first. */
    tui_job_t *jobs;
    size_t njob, capjob;
    uint32_t sweep;                /* number of the current jobs sweep */
    int64_t sweep_after;           /* cursor of the sweep's next page */
    int64_t sweep_start_mono;
    bool jobs_loaded;              /* one full sweep done */

    /* Workers, sorted by name. */
    tui_worker_t *workers;
    size_t nworker, capworker;
    uint32_t worker_gen;

    /* Latest failures, newest first. */
    tui_fail_t fails[TUI_FAIL_MAX];
    size_t nfail;
    bool fails_seeded;             /* the initial failures were asked for */

    /* The front door's state. */
    int door_state;                /* 0 not asked yet, 1 ok, -1 no reply */
    char door_err[TUI_TEXT_MAX];   /* why the last request failed */

    uint64_t feed_msgs, feed_bad;  /* messages read, messages ignored */
} tui_model_t;

/* ---- the front door (tui_door.c) ------------------------------------- */

/* What a request is for: the reply handler dispatches on it. */
typedef enum {
    TUI_RQ_STATS,
    TUI_RQ_WORKERS,
    TUI_RQ_JOBS,      /* a page of the jobs sweep; a = after */
    TUI_RQ_JOB,       /* status of job a, upserted into the model */
    TUI_RQ_FAILED,    /* failed tasks of job a, to seed the failures panel */
    TUI_RQ_REASON,    /* status of task a, for the reason of a failure */
    TUI_RQ_JV_TASKS,  /* a page of the open job a's tasks; b = after */
    TUI_RQ_TV_STATUS, /* status (with history) of the open task a */
    TUI_RQ_TV_RESULT, /* result of the open task a */
    TUI_RQ_ACTION,    /* cancel/retry; text says what, for the outcome */
} tui_rq_kind_t;

/* Priority: higher goes first; FIFO within a priority. */
enum { TUI_PRIO_LOW = 0, TUI_PRIO_POLL = 1, TUI_PRIO_VIEW = 2, TUI_PRIO_ACTION = 3 };

typedef struct tui_door_t tui_door_t;

/* A reply handed back to the loop. obj lives in zone until
 * tui_door_reply_free. rc: 0 ok, a FARM_E* code (err filled), -errno. */
typedef struct {
    tui_rq_kind_t kind;
    int64_t a, b;
    char text[128];                /* the request's label (actions) */
    int rc;
    int64_t latency_ms;            /* from handing it to the thread to the reply */
    farm_error_t err;
    msgpack_zone zone;
    bool has_zone;                 /* zone was initialised */
    msgpack_object obj;            /* the whole reply map; nil on failure */
} tui_reply_t;

/* Start the helper thread talking to endpoint with timeout_ms per request
 * and no retries. ctx: the loop's ZeroMQ context (borrowed; outlives the
 * door). Returns NULL (logged to the caller's stderr by errno) on failure. */
tui_door_t *tui_door_new(void *ctx, const char *endpoint, int timeout_ms);
/* Stop the thread (waits for its request in flight, at most one timeout),
 * free the queue; *d becomes NULL. Safe with NULL. */
void tui_door_destroy(tui_door_t **d);
/* The socket to poll for ZMQ_POLLIN (borrowed). */
void *tui_door_socket(tui_door_t *d);
/* Queue a request: req (one msgpack map) is taken over (*req emptied).
 * Returns 0, or -ENOMEM (req freed). */
int tui_door_push(tui_door_t *d, tui_rq_kind_t kind, int64_t a, int64_t b, int prio, const char *text,
                  msgpack_sbuffer *req);
/* True when a request of kind with argument a is queued or in flight
 * (a < 0 matches any argument). */
bool tui_door_pending(const tui_door_t *d, tui_rq_kind_t kind, int64_t a);
/* Requests queued plus in flight. */
size_t tui_door_count(const tui_door_t *d);
/* Take one finished reply without blocking. Returns 1 with *r filled (free
 * it with tui_door_reply_free), 0 when none is ready, -errno on failure.
 * Sends the next queued request when the thread is free. */
int tui_door_recv(tui_door_t *d, tui_reply_t *r);
void tui_door_reply_free(tui_reply_t *r);

/* ---- the UI state --------------------------------------------------- */

typedef enum { TUI_P_JOBS, TUI_P_WORKERS, TUI_P_FAILS, TUI_P_COUNT } tui_panel_t;
typedef enum { TUI_S_MAIN, TUI_S_JOB, TUI_S_TASK } tui_screen_t;

typedef struct {
    int64_t id, job, attempts, max_attempts, progress;
    int state;
    char type[65];
    char worker[TUI_NAME_MAX];
    char note[TUI_TEXT_MAX];       /* the error, else the latest message */
} tui_task_t;

/* A list of owned display lines. */
typedef struct {
    char **v;
    size_t n, cap;
} tui_lines_t;

typedef struct {
    int64_t job;                   /* the open job; 0 none */
    tui_task_t *tasks;             /* the page, by id */
    size_t n;
    int64_t *afters;               /* afters[p]: cursor of page p */
    size_t page, npages_known;
    int64_t next;                  /* cursor of the following page; 0 none */
    bool loaded;
    int sel, top;
} tui_jobview_t;

typedef struct {
    int64_t task;                  /* the open task; 0 none */
    int64_t job;
    int state;
    tui_lines_t status, result;    /* lines from the status and result replies */
    bool status_loaded, result_loaded;
    int top;                       /* first line shown */
} tui_taskview_t;

typedef enum { TUI_ACT_CANCEL, TUI_ACT_RETRY } tui_act_t;

/* Curses windows of the current layout; NULL when too small. */
typedef struct {
    WINDOW *head, *jobs, *workers, *fails, *body, *status, *input;
    int lines, cols;
    bool small;                    /* below TUI_MIN_COLS x TUI_MIN_LINES */
} tui_layout_t;

typedef struct {
    /* Configuration. */
    farm_endpoints_t ep;
    int refresh_ms;

    /* Connections. */
    void *ctx;                     /* ZeroMQ context */
    void *sub;                     /* the feed */
    tui_door_t *door;
    msgpack_zone zone;             /* scratch for feed messages */

    tui_model_t m;

    /* UI. */
    tui_screen_t screen;
    tui_panel_t panel;
    int64_t sel_job;               /* selected job id (0: the first row) */
    char sel_worker[TUI_NAME_MAX]; /* selected worker name */
    int sel_fail;                  /* selected failure index */
    int top[TUI_P_COUNT];          /* first row shown per panel */
    tui_jobview_t jv;
    tui_taskview_t tv;
    bool help;
    bool filtering;                /* the filter prompt is open */
    char filter[64], filter_edit[64];
    struct {
        bool open;
        tui_act_t act;
        bool job;                  /* a job (else a task) */
        int64_t id;
        char what[160];            /* "cancel job 17 (nightly)" */
    } confirm;
    char msg[256];                 /* the last action's outcome */
    bool msg_err;
    int64_t msg_mono;
    bool quit;
    bool utf8, colors;
    tui_layout_t lay;
    int64_t next_poll_mono;
    uint32_t poll_n;               /* poll cycles done */
    int64_t poll_at[3];            /* earliest next stats, workers, jobs request (mono ms) */
    int64_t backoff_ms;            /* grows while the front door does not answer */
    int64_t backoff_until;         /* no polling before this (mono ms) */
    int64_t view_at;               /* next refresh of an open view (mono ms) */
} tui_t;

/* ---- model (tui_model.c) --------------------------------------------- */

void tui_model_init(tui_model_t *m);
void tui_model_free(tui_model_t *m);
/* Apply a stats body (feed or front door). from_feed: a feed stats message,
 * which also adds a throughput sample. Garbage fields are ignored. */
void tui_model_stats(tui_model_t *m, const msgpack_object *o, bool from_feed, int64_t now_mono);
/* Upsert a JOBVIEW. Returns the job, or NULL when o is not one. */
tui_job_t *tui_model_job(tui_model_t *m, const msgpack_object *o, int64_t now_mono);
/* Find a job by id; NULL when unknown. */
tui_job_t *tui_model_job_find(tui_model_t *m, int64_t id);
/* Upsert a worker map. gen: the workers reply it came from (0: feed). */
tui_worker_t *tui_model_worker(tui_model_t *m, const msgpack_object *o, uint32_t gen);
/* Drop workers not listed by reply gen. */
void tui_model_workers_prune(tui_model_t *m, uint32_t gen);
/* A sweep page is done and it was the last: drop jobs the sweep did not
 * see (deleted) unless the feed touched them since the sweep began. */
void tui_model_sweep_end(tui_model_t *m);
/* Note a failed attempt (state FAILED or RETRYING). */
tui_fail_t *tui_model_fail(tui_model_t *m, int64_t task, int64_t job, int64_t attempt, int state,
                           const char *worker, int64_t ms);
/* Record the reason of the failures of task (from its TASKVIEW). */
void tui_model_fail_reason(tui_model_t *m, int64_t task, const char *error);

/* ---- decoding helpers (tui_model.c) ---------------------------------- */

/* Integer at key of map o; false when absent or not an integer. */
bool tui_get_int(const msgpack_object *o, const char *key, int64_t *v);
/* Number (int or float) at key. */
bool tui_get_num(const msgpack_object *o, const char *key, double *v);
/* String (str or bin) at key copied for display into dst (n bytes) with
 * control characters replaced; false (dst "") when absent or not a string. */
bool tui_get_str(const msgpack_object *o, const char *key, char *dst, size_t n);
/* Copy len bytes of s for display: control characters become '?', bytes
 * >= 0x80 are kept only when utf8 is set and they form valid UTF-8
 * (otherwise '?'); never cuts a character in half. */
void tui_text_copy(char *dst, size_t n, const char *s, size_t len);
/* Display form setting: whether non-ASCII UTF-8 may pass. */
void tui_text_utf8(bool on);

/* A duration for people: "850ms", "5s", "3m12s", "2h05m", "3d04h"; "-"
 * when negative. Returns buf. */
char *tui_fmt_dur(char *buf, size_t n, int64_t ms);
/* A count that fits a narrow column: "999", "12.3k", "4.56M". Returns buf. */
char *tui_fmt_count(char *buf, size_t n, int64_t v);

/* Lines helpers. */
int tui_lines_add(tui_lines_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tui_lines_clear(tui_lines_t *l);

/* ---- feed (tui_feed.c) ----------------------------------------------- */

/* Open (or reopen) the SUB socket to t->ep.feed. Returns 0 or -errno. */
int tui_feed_open(tui_t *t);
void tui_feed_close(tui_t *t);
/* Read and apply up to budget messages without blocking. Returns the
 * number read, or -errno on a socket failure. */
int tui_feed_drain(tui_t *t, int budget);
/* Apply one feed message (topic, body) to the state; garbage is counted
 * and ignored. Exposed for tests. */
void tui_feed_apply(tui_t *t, const char *topic, size_t tlen, const void *body, size_t blen);

/* ---- requests and replies (tui_req.c) -------------------------------- */

/* The poll cycle: stats, workers, the next jobs page, open views, reasons. */
void tui_req_poll(tui_t *t, int64_t now_mono);
/* Requests of the views. */
void tui_req_job_page(tui_t *t);
void tui_req_task(tui_t *t, bool result);
/* Send cancel/retry of a job or task. */
void tui_req_action(tui_t *t, tui_act_t act, bool job, int64_t id, const char *what);
/* Ask the reasons of failures lacking one (a few at a time). */
void tui_req_reasons(tui_t *t);
/* Handle a reply. */
void tui_req_reply(tui_t *t, tui_reply_t *r);

/* ---- views (tui_view.c) and input (tui_input.c) ---------------------- */

/* Start curses (colours where the terminal has them). Returns 0 or -1. */
int tui_view_start(tui_t *t);
/* End curses; safe to call twice. */
void tui_view_end(void);
/* Recreate the windows for the terminal's current size. */
void tui_view_layout(tui_t *t);
/* Draw a frame: everything into windows, then one doupdate. */
void tui_view_draw(tui_t *t);
/* Rows of data a panel shows in the current layout (at least 1). */
int tui_view_rows(const tui_t *t, tui_panel_t p);
/* Rows of the body in the detail views. */
int tui_view_body_rows(const tui_t *t);
/* Indexes of the jobs that pass the filter, newest first, into out
 * (capacity m->njob). Returns how many. */
size_t tui_view_jobs_visible(const tui_t *t, size_t *out);

/* Handle one key (a curses key code). */
void tui_input_key(tui_t *t, int key);
/* Set the status-line message. */
void tui_msg(tui_t *t, bool err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Open a job's view / a task's view. */
void tui_open_job(tui_t *t, int64_t job);
void tui_open_task(tui_t *t, int64_t task);
void tui_close_job(tui_t *t);
void tui_close_task(tui_t *t);

#endif
