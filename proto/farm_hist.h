/* farm_hist: a fixed log-scale latency histogram, cheap to add to, merge
 * and store. Bucket b covers values up to farm_hist_upper(b): exact below
 * 16 ms, then four buckets per power of two (error under 19 %). */
#ifndef FARM_HIST_H
#define FARM_HIST_H

#include <stdint.h>

#define FARM_HIST_N 128

static inline int farm_hist_bucket(int64_t v) {
    if (v < 16)
        return v < 0 ? 0 : (int)v;
    int lg = 63 - __builtin_clzll((unsigned long long)v); /* >= 4 */
    int sub = (int)((v >> (lg - 2)) & 3);
    int b = 16 + (lg - 4) * 4 + sub;
    return b < FARM_HIST_N ? b : FARM_HIST_N - 1;
}

static inline int64_t farm_hist_upper(int b) {
    if (b < 16)
        return b;
    int lg = (b - 16) / 4 + 4, sub = (b - 16) % 4;
    return ((int64_t)(4 + sub + 1) << (lg - 2)) - 1;
}

/* The value below which a fraction q of the n samples of h lie; 0 if empty. */
static inline int64_t farm_hist_quantile(const uint32_t *h, double q) {
    uint64_t n = 0, seen = 0;
    for (int i = 0; i < FARM_HIST_N; i++)
        n += h[i];
    if (!n)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)n);
    if (rank >= n)
        rank = n - 1;
    for (int i = 0; i < FARM_HIST_N; i++) {
        seen += h[i];
        if (seen > rank)
            return farm_hist_upper(i);
    }
    return farm_hist_upper(FARM_HIST_N - 1);
}

#endif
