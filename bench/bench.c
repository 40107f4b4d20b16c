/* bench: helpers shared by farm-bench and the baselines (see bench.h). */
#include "bench.h"

#include "farm_json.h"
#include "farm_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_sleep_us(int64_t us) {
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int bench_samples_add(bench_samples_t *s, int64_t x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        int64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static int s_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t bench_samples_pct(bench_samples_t *s, double p) {
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, s_cmp);
    /* nearest rank: the smallest value with at least p% of samples at or below it */
    size_t rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

void bench_samples_free(bench_samples_t *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

void bench_rng_seed(bench_rng_t *r, uint64_t seed) { r->s = seed ? seed : 0x9E3779B97F4A7C15ull; }

uint64_t bench_rng_next(bench_rng_t *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

double bench_rng_unit(bench_rng_t *r) { return (double)(bench_rng_next(r) >> 11) / 9007199254740992.0; }

void bench_rss_kb(long pid, int64_t *rss, int64_t *anon) {
    char path[64], line[256];
    *rss = *anon = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtoll(line + 6, NULL, 10);
        else if (strncmp(line, "RssAnon:", 8) == 0)
            *anon = strtoll(line + 8, NULL, 10);
    }
    fclose(f);
}

void bench_pack_submit(msgpack_sbuffer *sb, const void *task, size_t task_len, size_t n, const char *key) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key ? 4 : 3);
    farm_pack_kv_str(&pk, "op", "submit");
    farm_pack_kv_int(&pk, "v", 1);
    if (key)
        farm_pack_kv_str(&pk, "key", key);
    farm_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_sbuffer_write(sb, task, task_len);
}

int bench_task_from_json(msgpack_sbuffer *sb, const char *json) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    char err[256];
    if (farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err) != 0) {
        fprintf(stderr, "bench: bad task JSON: %s\n", err);
        return -1;
    }
    return 0;
}

void bench_key(char *buf, size_t n, uint64_t i) {
    static uint64_t nonce;
    if (!nonce) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        bench_rng_t r;
        bench_rng_seed(&r, ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32));
        nonce = bench_rng_next(&r) | 1;
    }
    snprintf(buf, n, "bench-%016" PRIx64 "-%012" PRIu64, nonce, i);
}

int64_t bench_int(const char *flag, const char *v, int64_t min, int64_t max) {
    char *end;
    errno = 0;
    long long x = strtoll(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x < min || x > max) {
        fprintf(stderr, "bench: %s needs an integer from %" PRId64 " to %" PRId64 ", not '%s'\n", flag, min, max,
                v ? v : "");
        exit(2);
    }
    return x;
}
