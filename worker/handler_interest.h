/* handler_interest: the interest task type, a CPU-bound financial model.
 *
 *   interest  args (mode "schedule", the default):
 *               {"principal": P >= 0, "rate": annual nominal rate as a
 *                fraction (0.05), "years": 1..200, "compounding": periods
 *                a year 1..365 (default 12), "contribution": C >= 0 added
 *                at the end of every period (default 0)}
 *             result {"mode": "schedule", "final", "contributed", "interest",
 *                     "schedule": [{"year", "balance", "contributed",
 *                                   "interest"}, ...one per year]}
 *             computed period by period (so it checks the closed form
 *             P(1+r/n)^(nt) + C((1+r/n)^(nt)-1)/(r/n) independently).
 *
 *             args (mode "montecarlo"): principal, years, compounding and
 *               contribution as above, plus {"simulations": 1..1000000,
 *               "mean": mean annual rate, "stddev": its deviation >= 0,
 *               "seed": 0..2^63-1 (default 0), "percentiles": [0..100, ...]
 *               (default [5, 25, 50, 75, 95], at most 20)}. Each simulation
 *               draws one rate a year from N(mean, stddev) (floored at -100 %)
 *               and compounds it period by period; simulations x years x
 *               compounding may be at most 4e9 steps (max_steps).
 *             result {"mode": "montecarlo", "simulations", "seed", "mean",
 *                     "stddev", "min", "max", "percentiles": {"p5": x, ...}}
 *             Progress every 1 % ("simulated 12000/100000"); a cancel or
 *             timeout stops it between two simulations.
 *
 * Determinism: the generator is xoshiro256** seeded through splitmix64 and
 * normal deviates come from Box-Muller, all written here, so a seed gives
 * the same draws on every machine; compounding uses multiplications only
 * (no pow), so results are reproducible wherever IEEE doubles and the C
 * library's log, sqrt, sin and cos agree (they do across x86-64 glibc).
 *
 * The computations below are pure functions, callable from tests.
 */
#ifndef HANDLER_INTEREST_H
#define HANDLER_INTEREST_H

#include "farm_plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKER_INTEREST_YEARS_MAX 200
#define WORKER_INTEREST_PER_YEAR_MAX 365
#define WORKER_INTEREST_AMOUNT_MAX 1e15     /* principal and contribution */
#define WORKER_INTEREST_SIMS_MAX 1000000
#define WORKER_INTEREST_STEPS_MAX 4000000000LL /* simulations x years x compounding */
#define WORKER_INTEREST_PCTS_MAX 20

/* A savings plan. */
typedef struct {
    double principal;    /* at the start, >= 0 */
    double rate;         /* annual nominal rate, a fraction; >= -1 */
    int years;           /* 1..WORKER_INTEREST_YEARS_MAX */
    int per_year;        /* compounding periods a year, 1..WORKER_INTEREST_PER_YEAR_MAX */
    double contribution; /* added at the end of every period, >= 0 */
} worker_interest_t;

/* One year of a schedule. */
typedef struct {
    int year;           /* 1-based */
    double balance;     /* at the end of the year */
    double contributed; /* principal plus contributions so far */
    double interest;    /* earned during this year */
} worker_interest_year_t;

/* Run plan p period by period; when out is not NULL, fill p->years
 * entries of it. Returns the final balance. */
double worker_interest_schedule(const worker_interest_t *p, worker_interest_year_t *out);

/* ---- the generator ------------------------------------------------------ */

/* xoshiro256** state, with Box-Muller's second deviate kept for the next
 * call. */
typedef struct {
    uint64_t s[4];
    bool has_spare;
    double spare;
} worker_rng_t;

/* splitmix64: advance *state and return the next output. */
uint64_t worker_splitmix64(uint64_t *state);
/* Seed r from seed through splitmix64 (any seed, 0 included, is fine). */
void worker_rng_seed(worker_rng_t *r, uint64_t seed);
/* The next 64 random bits (xoshiro256**). */
uint64_t worker_rng_next(worker_rng_t *r);
/* A uniform double in [0, 1), 53 random bits. */
double worker_rng_uniform(worker_rng_t *r);
/* A normal deviate with the given mean and deviation (Box-Muller). */
double worker_rng_normal(worker_rng_t *r, double mean, double stddev);

/* ---- Monte Carlo -------------------------------------------------------- */

typedef struct {
    worker_interest_t plan; /* rate is ignored: each year draws its own */
    double mean, stddev;    /* of the annual rate */
    int64_t simulations;    /* 1..WORKER_INTEREST_SIMS_MAX */
    uint64_t seed;
} worker_mc_t;

/* Called every `every` simulations with the number done; return false to
 * stop. */
typedef bool (*worker_mc_tick_fn)(void *ud, int64_t done);

/* Run m->simulations simulations into finals (m->simulations entries, in
 * simulation order, unsorted). tick (may be NULL) is called every
 * max(1, simulations / 100) simulations. Returns the number of simulations
 * run: m->simulations, or fewer when tick asked to stop. */
int64_t worker_interest_mc(const worker_mc_t *m, double *finals, worker_mc_tick_fn tick, void *ud);

/* The p-th percentile (0..100) of sorted[0..n), n >= 1, by linear
 * interpolation between closest ranks (R type 7). */
double worker_percentile(const double *sorted, size_t n, double p);

/* The interest handler (farm_plugin.h); registered by worker_handlers. */
int worker_interest_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result);

#endif
