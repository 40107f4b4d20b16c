/* client: the `farm` command, shared declarations of its nouns.
 *
 * main.c reads the global flags and dispatches to one function per command
 * (client_cmd.c, client_submit.c, client_wait.c). Each command parses its
 * own flags with one table-driven parser (client_opt.c) that also accepts
 * the global flags after the command and generates --help. Requests go out
 * and replies come back through client_call.c, which owns the connection,
 * the reply zone and the translation of every failure into the message
 * and exit code the user sees. Replies are read with a checking reader and
 * shown with aligned tables (client_print.c): a command reads the whole
 * reply into cells first and prints only when every field had the type it
 * must have, so a malformed reply never leaves half a table behind.
 *
 * Exit codes are the command's interface to scripts and never change:
 * 0 ok; 1 the awaited task or job failed or was cancelled; 2 usage (bad
 * flags or input, nothing was sent); 3 the farm said no, did not answer, or
 * answered nonsense.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include "farm_client.h"
#include "farm_config.h"
#include "farm_msg.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    CLI_OK = 0,       /* done */
    CLI_FAILED = 1,   /* the awaited task/job failed or was cancelled */
    CLI_USAGE = 2,    /* bad invocation; nothing was sent */
    CLI_FARM = 3,     /* error reply, no reply or a malformed reply */
    CLI_CONTINUE = -1 /* cli_parse: go on with the command */
};

#define CLI_DEFAULT_SERVER "tcp://127.0.0.1:5555"
#define CLI_DEFAULT_TIMEOUT_MS 5000
#define CLI_DEFAULT_RETRIES 2

/* The state of one invocation. */
typedef struct {
    char server[FARM_EP_MAX]; /* front-door endpoint */
    char feed[FARM_EP_MAX];   /* status feed from --feed/FARM_FEED; "" derives it */
    int64_t timeout_ms;       /* wait for one reply (per attempt) */
    int64_t retries;          /* lazy-pirate resends per request */
    bool json;                /* print replies as JSON, nothing else on stdout */
    bool tty;                 /* stdout is a terminal */
    const char *cmd;          /* name of the running command, for messages */
    const char *curve_server; /* --curve-server KEY|FILE (else FARM_CURVE_SERVER), or NULL */
    const char *curve_cert;   /* --curve-cert FILE (else FARM_CURVE_CERT), or NULL */
    bool no_network;          /* the command never connects (keygen): CURVE is not set up */
    const char *exit_help;    /* the command's own exit statuses for --help, or NULL */
    farm_client_t *client;    /* opened at the first request */
    bool bad_server;          /* libzmq refused the endpoint: a usage error */
    msgpack_zone zone;        /* holds the last reply's objects */
} cli_t;

/* ---- options (client_opt.c) ------------------------------------------- */

typedef enum {
    CLI_OPT_FLAG, /* dst: bool *; no value */
    CLI_OPT_INT,  /* dst: cli_int_t *; value in min..max */
    CLI_OPT_STR,  /* dst: const char **; value borrowed from argv */
} cli_opt_kind_t;

typedef struct {
    int64_t v; /* the value, or the default when !set */
    bool set;  /* given on the command line */
} cli_int_t;

typedef struct {
    const char *name;    /* long name without "--" */
    cli_opt_kind_t kind; /* what it takes */
    void *dst;           /* where the value goes (see kind) */
    int64_t min, max;    /* bounds of an INT */
    const char *metavar; /* value placeholder in help, NULL for flags */
    const char *help;    /* one line */
} cli_opt_t;

/* A command's help text: usage after "farm CMD", what it does, notes. */
typedef struct {
    const char *usage;   /* "[OPTIONS] ID | --job ID" */
    const char *summary; /* one line */
    const char *details; /* more lines, or NULL */
} cli_help_t;

/* Parse argv[1..argc) of command cli->cmd against opts (n entries) plus the
 * global flags. Positionals are collected into pos (borrowed from argv;
 * room for argc entries, count in *npos). With rest non-NULL, "--" ends
 * the options and what follows goes to *rest and *nrest (NULL, 0 when there is
 * no "--"); with rest NULL, "--" just makes the rest positionals.
 * Accepts --name VALUE and --name=VALUE. Returns CLI_CONTINUE, CLI_OK
 * after printing --help, or CLI_USAGE after a message on stderr. */
int cli_parse(cli_t *cli, const cli_help_t *help, const cli_opt_t *opts, size_t n, int argc, char **argv,
              char **pos, int *npos, char ***rest, int *nrest);

/* Parse one of the global flags at argv[*i] (advancing *i past a value).
 * Returns 1 when it was one, 0 when not, CLI_USAGE after a message. */
int cli_parse_global(cli_t *cli, int argc, char **argv, int *i);

/* Print "farm CMD: <message>" and a hint to --help on stderr; returns
 * CLI_USAGE. */
int cli_usage(const cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a positive id (1..INT64_MAX) named `what`. Returns 0 or CLI_USAGE
 * after a message. */
int cli_parse_id(const cli_t *cli, const char *what, const char *s, int64_t *out);

/* Help of the global flags, for `farm --help` and every command's help. */
void cli_help_globals(FILE *out);

/* Exactly one of a positional task id and --job/--task. Sets *is_job.
 * Returns 0 or CLI_USAGE. */
int cli_task_or_job(const cli_t *cli, char **pos, int npos, const cli_int_t *job, const cli_int_t *task,
                    int64_t *id, bool *is_job);

/* ---- requests (client_call.c) ----------------------------------------- */

/* A request being packed. The packer writes through a callback that
 * remembers an allocation failure, so packing code need not check every
 * msgpack_pack_* call; cli_send refuses a request that failed. `sb` is
 * first so that pk.data is also a msgpack_sbuffer * (farm_pack_raw). */
typedef struct {
    msgpack_sbuffer sb; /* the packed bytes */
    msgpack_packer pk;  /* packs into sb */
    bool oom;           /* a write failed: the request is incomplete */
} cli_req_t;

/* Initialise q and start a request map of `n` entries with "op" and "v"
 * (both counted in n). Free with cli_req_free. */
void cli_req_init(cli_req_t *q, size_t n, const char *op);
void cli_req_free(cli_req_t *q);

/* Send q and wait for the reply. Returns the farm_client_call code with
 * *reply valid until the next cli_send (also on error replies; nil when
 * there is no reply); fills e. */
int cli_send(cli_t *cli, const cli_req_t *q, const msgpack_object **reply, farm_error_t *e);

/* Report what cli_send returned on stderr (and print an error reply as
 * JSON with --json). Returns the exit code: CLI_OK for 0, CLI_USAGE when
 * the endpoint itself was refused, else CLI_FARM. */
int cli_report(cli_t *cli, int rc, const farm_error_t *e, const msgpack_object *reply);

/* cli_send then cli_report for any failure. Returns CLI_OK with *reply set,
 * or CLI_FARM. */
int cli_call(cli_t *cli, const cli_req_t *q, const msgpack_object **reply);

/* Print o as one line of compact JSON on stdout. Returns CLI_OK or
 * CLI_FARM after a message when stdout fails. */
int cli_print_json(const msgpack_object *o);

/* "farm: malformed reply: why" on stderr; returns CLI_FARM. */
int cli_malformed(const char *why);

/* Sleep ms milliseconds (through signals). */
void cli_sleep_ms(int64_t ms);

/* Close the connection and free the zone. */
void cli_close(cli_t *cli);

/* ---- the status feed (client_feed.c) ---------------------------------- */

/* A SUB on the status feed, used as a hint of when to ask the front door. */
typedef struct cli_feed_t cli_feed_t;

/* The feed endpoint of this invocation into out: --feed/FARM_FEED, else
 * the front door's host with port 5559 (tcp only); "" when there is none
 * ("none" given, or an ipc front door). */
void cli_feed_endpoint(const cli_t *cli, char out[FARM_EP_MAX]);

/* Subscribe to the topic prefixes topics[0..n). Returns the caller's feed,
 * or NULL when there is no feed (no endpoint, libzmq refused it: a note on
 * stderr), in which case the caller polls. Never fatal. */
cli_feed_t *cli_feed_open(const cli_t *cli, const char *const *topics, size_t n);

/* Close; *f becomes NULL. Safe with NULL. */
void cli_feed_close(cli_feed_t **f);

/* Wait until the monotonic deadline (farm_mono_ms) for one message.
 * Returns 1 with *topic and *body (a map) valid until the next call on f;
 * 0 at the deadline, when a signal interrupted the wait, or after sleeping
 * to the deadline when f is NULL. Malformed messages are skipped. */
int cli_feed_next(cli_feed_t *f, int64_t deadline, const char **topic, const msgpack_object **body);

/* ---- reading replies (client_print.c) --------------------------------- */

/* A checking reader: the first wrong field is remembered and later reads
 * return "absent", so a command reads everything and checks once. */
typedef struct {
    bool bad;       /* a field was missing or of the wrong type */
    char why[160];  /* which and why, for cli_malformed */
} cli_rd_t;

/* Read key of map m. required: absent or nil is an error; otherwise it
 * returns false for absent/nil. A value of the wrong type (or m not a map)
 * is always an error. Return true when *out was set. */
bool cli_rd_int(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, int64_t *out);
bool cli_rd_num(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, double *out);
bool cli_rd_bool(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, bool *out);
/* str only; *out borrowed from the reply */
bool cli_rd_str(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, farm_str_t *out);
/* str or bin */
bool cli_rd_bytes(cli_rd_t *r, const msgpack_object *m, const char *key, bool required, farm_str_t *out);
/* map or array; NULL when absent (or on error) */
const msgpack_object *cli_rd_map(cli_rd_t *r, const msgpack_object *m, const char *key, bool required);
const msgpack_object *cli_rd_array(cli_rd_t *r, const msgpack_object *m, const char *key, bool required);
/* Anything; NULL when absent or nil. */
const msgpack_object *cli_rd_any(const msgpack_object *m, const char *key);
/* Mark the reader bad (first reason wins). */
void cli_rd_fail(cli_rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- formatting (client_print.c) -------------------------------------- */

/* Each writes a NUL-terminated text into buf (n bytes) and returns buf. */
/* s made safe for a terminal (control bytes escaped, invalid UTF-8 as
 * \xNN), cut to at most `max` characters with "..." (max 0: no cut). */
char *cli_fmt_text(char *buf, size_t n, farm_str_t s, size_t max);
/* "3.2s ago", "4m12s ago", "in 2s" relative to now_ms. */
char *cli_fmt_age(char *buf, size_t n, int64_t ms, int64_t now_ms);
/* "2024-05-01 12:00:03 (3.2s ago)" in local time. */
char *cli_fmt_time(char *buf, size_t n, int64_t ms, int64_t now_ms);
/* A duration: "850ms", "1.25s", "3m02s", "2h05m", "3d04h". */
char *cli_fmt_dur(char *buf, size_t n, int64_t ms);
/* Any value on one line: nil "-", numbers, text, bin "<N bytes>",
 * containers as compact JSON (cut to max characters, 0: no cut). */
char *cli_fmt_value(char *buf, size_t n, const msgpack_object *o, size_t max);

/* ---- tables (client_print.c) ------------------------------------------ */

/* Rows of text cells, printed with columns as wide as their widest cell.
 * Cells are copied. A table without a header is a key/value list. */
typedef struct {
    size_t ncols;     /* columns */
    const char *align; /* per column 'l' or 'r' (NULL: all left) */
    char **cells;     /* nrows * ncols copies; row 0 is the header if any */
    size_t nrows, cap;
    bool oom;         /* an allocation failed; cli_table_print reports it */
} cli_table_t;

void cli_table_init(cli_table_t *t, size_t ncols, const char *align);
/* Add one row of t->ncols cells (NULL cells print as "-"). */
void cli_table_add(cli_table_t *t, const char *const *cells);
/* Key/value row of a two-column table, printf-style value. */
void cli_table_kv(cli_table_t *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Print to out with `indent` leading spaces; two spaces between columns, no
 * trailing blanks. Returns CLI_OK, or CLI_FARM after "out of memory". */
int cli_table_print(cli_table_t *t, FILE *out, int indent);
void cli_table_free(cli_table_t *t);

/* ---- commands ---------------------------------------------------------- */

/* Each runs one command with argv[0] its name; returns an exit code. */
int cli_cmd_submit(cli_t *cli, int argc, char **argv);
int cli_cmd_status(cli_t *cli, int argc, char **argv);
int cli_cmd_result(cli_t *cli, int argc, char **argv);
int cli_cmd_list(cli_t *cli, int argc, char **argv);
int cli_cmd_jobs(cli_t *cli, int argc, char **argv);
int cli_cmd_cancel(cli_t *cli, int argc, char **argv);
int cli_cmd_retry(cli_t *cli, int argc, char **argv);
int cli_cmd_delete(cli_t *cli, int argc, char **argv);
int cli_cmd_stats(cli_t *cli, int argc, char **argv);
int cli_cmd_workers(cli_t *cli, int argc, char **argv);
int cli_cmd_health(cli_t *cli, int argc, char **argv);
int cli_cmd_wait(cli_t *cli, int argc, char **argv);
int cli_cmd_keygen(cli_t *cli, int argc, char **argv);
int cli_cmd_map(cli_t *cli, int argc, char **argv);
int cli_cmd_metrics(cli_t *cli, int argc, char **argv);

/* Wait for task or job `id` to be final, as `farm wait` does: woken by the
 * status feed, asking the front door after each relevant event and at
 * least every poll_ms; give up after wait_ms (0 = never). Returns the exit
 * code. */
int cli_wait(cli_t *cli, int64_t id, bool is_job, int64_t poll_ms, int64_t wait_ms);

/* Print the view of a task or job status reply (human form). */
int cli_print_task(cli_t *cli, const msgpack_object *view);
int cli_print_job(cli_t *cli, const msgpack_object *view);

#endif
