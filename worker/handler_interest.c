/* handler_interest: compound interest schedules and their Monte Carlo
 * (see handler_interest.h).
 *
 * Both modes compound period by period with plain multiplications; the
 * schedule is cheap (years x compounding steps), the Monte Carlo is the
 * CPU-heavy one (simulations x years x compounding steps, up to 4e9), which
 * is the point: a batch of them shows the farm spreading work over cores.
 * The handler checks every number of its args against explicit bounds
 * before it allocates (finals: 8 bytes a simulation, at most 8 MB) and
 * polls farm_task_stopping() between simulations, so a cancel or timeout
 * ends it within one simulation's work.
 */
#include "handler_interest.h"

#include "farm_msg.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schedule ----------------------------------------------------------- */

double worker_interest_schedule(const worker_interest_t *p, worker_interest_year_t *out) {
    double g = 1.0 + p->rate / p->per_year;
    if (g < 0)
        g = 0; /* a rate below -100 % loses everything, never more */
    double b = p->principal, contributed = p->principal;
    for (int y = 1; y <= p->years; y++) {
        double start = b;
        for (int k = 0; k < p->per_year; k++)
            b = b * g + p->contribution;
        contributed += p->contribution * p->per_year;
        if (out) {
            out[y - 1].year = y;
            out[y - 1].balance = b;
            out[y - 1].contributed = contributed;
            out[y - 1].interest = b - start - p->contribution * p->per_year;
        }
    }
    return b;
}

/* ---- generator ---------------------------------------------------------- */

uint64_t worker_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void worker_rng_seed(worker_rng_t *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = worker_splitmix64(&st);
    r->has_spare = false;
    r->spare = 0;
}

static inline uint64_t s_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t worker_rng_next(worker_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

double worker_rng_uniform(worker_rng_t *r) { return (double)(worker_rng_next(r) >> 11) * 0x1.0p-53; }

double worker_rng_normal(worker_rng_t *r, double mean, double stddev) {
    if (r->has_spare) {
        r->has_spare = false;
        return mean + stddev * r->spare;
    }
    double u1 = 1.0 - worker_rng_uniform(r); /* (0, 1]: log(u1) is finite */
    double u2 = worker_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->has_spare = true;
    return mean + stddev * rad * cos(th);
}

/* ---- Monte Carlo -------------------------------------------------------- */

int64_t worker_interest_mc(const worker_mc_t *m, double *finals, worker_mc_tick_fn tick, void *ud) {
    worker_rng_t rng;
    worker_rng_seed(&rng, m->seed);
    const worker_interest_t *p = &m->plan;
    int64_t every = m->simulations / 100 > 0 ? m->simulations / 100 : 1;
    for (int64_t i = 0; i < m->simulations; i++) {
        double b = p->principal;
        for (int y = 0; y < p->years; y++) {
            double r = worker_rng_normal(&rng, m->mean, m->stddev);
            double g = 1.0 + (r < -1.0 ? -1.0 : r) / p->per_year;
            for (int k = 0; k < p->per_year; k++)
                b = b * g + p->contribution;
        }
        finals[i] = b;
        if (tick && ((i + 1) % every == 0 || i + 1 == m->simulations) && !tick(ud, i + 1))
            return i + 1;
    }
    return m->simulations;
}

double worker_percentile(const double *sorted, size_t n, double p) {
    if (n == 1)
        return sorted[0];
    double h = (double)(n - 1) * (p < 0 ? 0 : p > 100 ? 100 : p) / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

/* ---- the handler -------------------------------------------------------- */

typedef struct {
    farm_str_t mode;
    const msgpack_object *principal, *rate, *contribution, *mean, *stddev, *percentiles;
    int64_t years, compounding, simulations, seed;
} s_args_t;

static const farm_field_t s_fields[] = {
    {"mode", FARM_T_STR, false, 1, 16, 0, offsetof(s_args_t, mode), NULL},
    {"principal", FARM_T_ANY, true, 0, 0, 0, offsetof(s_args_t, principal), NULL},
    {"rate", FARM_T_ANY, false, 0, 0, 0, offsetof(s_args_t, rate), NULL},
    {"contribution", FARM_T_ANY, false, 0, 0, 0, offsetof(s_args_t, contribution), NULL},
    {"mean", FARM_T_ANY, false, 0, 0, 0, offsetof(s_args_t, mean), NULL},
    {"stddev", FARM_T_ANY, false, 0, 0, 0, offsetof(s_args_t, stddev), NULL},
    {"percentiles", FARM_T_ARRAY, false, 1, WORKER_INTEREST_PCTS_MAX, 0, offsetof(s_args_t, percentiles), NULL},
    {"years", FARM_T_INT, true, 1, WORKER_INTEREST_YEARS_MAX, 0, offsetof(s_args_t, years), NULL},
    {"compounding", FARM_T_INT, false, 1, WORKER_INTEREST_PER_YEAR_MAX, 12, offsetof(s_args_t, compounding), NULL},
    {"simulations", FARM_T_INT, false, 1, WORKER_INTEREST_SIMS_MAX, 10000, offsetof(s_args_t, simulations), NULL},
    {"seed", FARM_T_INT, false, 0, INT64_MAX, 0, offsetof(s_args_t, seed), NULL},
};

/* Read number o (int or finite float) in min..max into *out; absent (NULL)
 * gives def when has_def, else fails. Returns 0 or -1 with the failure set. */
static int s_number(farm_task_ctx_t *ctx, const msgpack_object *o, const char *name, double min, double max,
                    bool has_def, double def, double *out) {
    if (!o) {
        if (has_def) {
            *out = def;
            return 0;
        }
        farm_task_fail(ctx, "interest: args.%s is missing", name);
        return -1;
    }
    double x;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: x = (double)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: x = (double)o->via.i64; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: x = o->via.f64; break;
    default: x = NAN; break;
    }
    if (!isfinite(x) || x < min || x > max) {
        farm_task_fail(ctx, "interest: args.%s must be a number in %g..%g", name, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

static int s_schedule(farm_task_ctx_t *ctx, const s_args_t *a, worker_interest_t *p, msgpack_packer *result) {
    if (s_number(ctx, a->rate, "rate", -1, 10, false, 0, &p->rate) != 0)
        return -1;
    worker_interest_year_t *ys = calloc((size_t)p->years, sizeof *ys);
    if (!ys) {
        farm_task_fail(ctx, "interest: worker out of memory");
        return -1;
    }
    double final = worker_interest_schedule(p, ys);
    double contributed = ys[p->years - 1].contributed;
    msgpack_pack_map(result, 5);
    farm_pack_kv_str(result, "mode", "schedule");
    farm_pack_kv_double(result, "final", final);
    farm_pack_kv_double(result, "contributed", contributed);
    farm_pack_kv_double(result, "interest", final - contributed);
    farm_pack_str(result, "schedule");
    msgpack_pack_array(result, (size_t)p->years);
    for (int y = 0; y < p->years; y++) {
        msgpack_pack_map(result, 4);
        farm_pack_kv_int(result, "year", ys[y].year);
        farm_pack_kv_double(result, "balance", ys[y].balance);
        farm_pack_kv_double(result, "contributed", ys[y].contributed);
        farm_pack_kv_double(result, "interest", ys[y].interest);
    }
    free(ys);
    farm_task_progress(ctx, 100, NULL);
    return 0;
}

typedef struct {
    farm_task_ctx_t *ctx;
    int64_t total;
} s_tick_t;

static bool s_tick(void *ud, int64_t done) {
    s_tick_t *t = ud;
    if (farm_task_stopping(t->ctx))
        return false;
    char msg[64];
    snprintf(msg, sizeof msg, "simulated %" PRId64 "/%" PRId64, done, t->total);
    farm_task_progress(t->ctx, (int)(done * 100 / t->total), msg);
    return true;
}

static int s_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static int s_montecarlo(farm_task_ctx_t *ctx, const s_args_t *a, worker_mc_t *m, msgpack_packer *result) {
    if (s_number(ctx, a->mean, "mean", -1, 10, false, 0, &m->mean) != 0 ||
        s_number(ctx, a->stddev, "stddev", 0, 10, false, 0, &m->stddev) != 0)
        return -1;
    m->simulations = a->simulations;
    m->seed = (uint64_t)a->seed;
    /* Bound the work before doing any: a division avoids the overflow. */
    int64_t per_sim = (int64_t)m->plan.years * m->plan.per_year;
    if (m->simulations > WORKER_INTEREST_STEPS_MAX / per_sim) {
        farm_task_fail(ctx,
                       "interest: simulations x years x compounding is %" PRId64 ", over the limit max_steps=%lld",
                       m->simulations * per_sim, WORKER_INTEREST_STEPS_MAX);
        return -1;
    }
    double pcts[WORKER_INTEREST_PCTS_MAX] = {5, 25, 50, 75, 95};
    size_t npcts = 5;
    if (a->percentiles) {
        npcts = a->percentiles->via.array.size;
        for (size_t i = 0; i < npcts; i++) {
            const msgpack_object *o = &a->percentiles->via.array.ptr[i];
            if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > 100) {
                farm_task_fail(ctx, "interest: args.percentiles[%zu] must be an integer 0..100", i);
                return -1;
            }
            pcts[i] = (double)o->via.u64;
        }
    }
    double *finals = malloc((size_t)m->simulations * sizeof *finals);
    if (!finals) {
        farm_task_fail(ctx, "interest: worker out of memory");
        return -1;
    }
    s_tick_t t = {ctx, m->simulations};
    int64_t done = worker_interest_mc(m, finals, s_tick, &t);
    if (done < m->simulations) {
        free(finals);
        farm_task_fail(ctx, "interest: stopped after %" PRId64 " of %" PRId64 " simulations", done,
                       m->simulations);
        return -1;
    }
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < done; i++)
        sum += finals[i];
    double mean = sum / (double)done;
    for (int64_t i = 0; i < done; i++)
        sq += (finals[i] - mean) * (finals[i] - mean);
    double sd = done > 1 ? sqrt(sq / (double)(done - 1)) : 0;
    qsort(finals, (size_t)done, sizeof *finals, s_cmp_double);
    msgpack_pack_map(result, 8);
    farm_pack_kv_str(result, "mode", "montecarlo");
    farm_pack_kv_int(result, "simulations", done);
    farm_pack_kv_int(result, "seed", (int64_t)m->seed);
    farm_pack_kv_double(result, "mean", mean);
    farm_pack_kv_double(result, "stddev", sd);
    farm_pack_kv_double(result, "min", finals[0]);
    farm_pack_kv_double(result, "max", finals[done - 1]);
    farm_pack_str(result, "percentiles");
    msgpack_pack_map(result, npcts);
    for (size_t i = 0; i < npcts; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", (int)pcts[i]);
        farm_pack_kv_double(result, key, worker_percentile(finals, (size_t)done, pcts[i]));
    }
    free(finals);
    return 0;
}

int worker_interest_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    s_args_t a;
    farm_error_t e;
    if (args->type == MSGPACK_OBJECT_NIL) {
        farm_task_fail(ctx, "interest: args must be a map with principal, rate and years");
        return -1;
    }
    if (farm_msg_decode(s_fields, sizeof s_fields / sizeof s_fields[0], args, &a, NULL, "args", &e) != 0) {
        farm_task_fail(ctx, "interest: %s", e.message);
        return -1;
    }
    bool mc = false;
    if (a.mode.ptr && !farm_str_eq(a.mode, "schedule")) {
        if (!farm_str_eq(a.mode, "montecarlo")) {
            farm_task_fail(ctx, "interest: args.mode must be schedule or montecarlo");
            return -1;
        }
        mc = true;
    }
    worker_mc_t m = {.plan = {.years = (int)a.years, .per_year = (int)a.compounding}};
    if (s_number(ctx, a.principal, "principal", 0, WORKER_INTEREST_AMOUNT_MAX, false, 0, &m.plan.principal) != 0 ||
        s_number(ctx, a.contribution, "contribution", 0, WORKER_INTEREST_AMOUNT_MAX, true, 0,
                 &m.plan.contribution) != 0)
        return -1;
    return mc ? s_montecarlo(ctx, &a, &m, result) : s_schedule(ctx, &a, &m.plan, result);
}
