/* bench: what the benchmark programs share (see scripts/bench).
 *
 * The load generator (farm-bench) and the bare baselines (base_*) must
 * send the same bytes and count time the same way, or their ratio means
 * nothing; so the request builders, the clock, the percentiles and the
 * output format live here once. Every program prints exactly one result
 * line on stdout, `key=value` pairs separated by spaces, which
 * scripts/bench parses; diagnostics go to stderr.
 *
 * Nothing here is part of the farm: it links libfarm for the codec, the
 * socket set-up and the client, and changes none of them.
 */
#ifndef BENCH_H
#define BENCH_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in microseconds. */
int64_t bench_now_us(void);

/* Sleep for us microseconds (EINTR resumed). */
void bench_sleep_us(int64_t us);

/* A growable array of int64 samples. */
typedef struct {
    int64_t *v;   /* the samples, owned */
    size_t n;     /* number of samples */
    size_t cap;   /* capacity of v */
} bench_samples_t;

/* Append x. Returns 0 or -ENOMEM. */
int bench_samples_add(bench_samples_t *s, int64_t x);
/* Nearest-rank percentile p (0 < p <= 100) of the samples; sorts them.
 * 0 when there are none. */
int64_t bench_samples_pct(bench_samples_t *s, double p);
/* Free the samples; safe twice. */
void bench_samples_free(bench_samples_t *s);

/* A small deterministic generator (xorshift64*), so a seed gives the same
 * batch on every machine. */
typedef struct {
    uint64_t s;
} bench_rng_t;
void bench_rng_seed(bench_rng_t *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng_t *r);
/* Uniform in [0, 1). */
double bench_rng_unit(bench_rng_t *r);

/* Resident memory of process pid in kB from /proc/PID/status: *rss the
 * whole resident set (VmRSS), *anon its anonymous part (RssAnon: heap and
 * stacks, without file pages such as a memory-mapped database). -1 when
 * they cannot be read. */
void bench_rss_kb(long pid, int64_t *rss, int64_t *anon);

/* Pack a submit request {"op","v","key","tasks":[task x n]} into sb
 * (initialised by the caller). task is one encoded MessagePack task spec
 * (borrowed). key NULL leaves the key out. */
void bench_pack_submit(msgpack_sbuffer *sb, const void *task, size_t task_len, size_t n, const char *key);

/* Encode the JSON task spec into sb (initialised by the caller). Returns 0
 * or -1 with a message on stderr. */
int bench_task_from_json(msgpack_sbuffer *sb, const char *json);

/* The key of submit number i of this process: fixed width, so every
 * request of a run has the same size. Writes into buf (n >= 40). */
void bench_key(char *buf, size_t n, uint64_t i);

/* Parse a positive integer flag value; exits 2 with a message when bad. */
int64_t bench_int(const char *flag, const char *v, int64_t min, int64_t max);

#endif
