/* base_spawn: the raw process-spawn rate of this machine, which the farm's
 * exec throughput is held against. posix_spawn of `true` and waitpid,
 * keeping J children running at once, N times in all. No pipes, no output
 * capture, no ZeroMQ. `true` is looked up on PATH once, before the clock
 * starts: the raw rate is that of spawning a known file, not of trying
 * every PATH entry on each spawn.
 *
 * usage: base_spawn [--n N] [--jobs J] [--cap-s S]
 * prints: n=N done=D jobs=J capped=0|1 elapsed_s=S rate=R (runs/s)
 * With --cap-s no run starts after S seconds; the rate is then D over the
 * time to the last exit.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    int64_t n = 2000, jobs = 2, cap_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n"))
            n = bench_int("--n", v, 1, 10000000), i++;
        else if (!strcmp(argv[i], "--jobs"))
            jobs = bench_int("--jobs", v, 1, 1024), i++;
        else if (!strcmp(argv[i], "--cap-s"))
            cap_s = bench_int("--cap-s", v, 1, 86400), i++;
        else {
            fprintf(stderr, "usage: base_spawn [--n N] [--jobs J] [--cap-s S]\n");
            return 2;
        }
    }
    char *args[] = {"true", NULL}, path[4096] = "";
    const char *dirs = getenv("PATH");
    for (const char *d = dirs ? dirs : "/usr/bin:/bin"; *d && !path[0];) {
        size_t len = strcspn(d, ":");
        snprintf(path, sizeof path, "%.*s/true", (int)len, d);
        if (access(path, X_OK) != 0)
            path[0] = '\0';
        d += len + (d[len] == ':');
    }
    if (!path[0]) {
        fprintf(stderr, "base_spawn: no `true` on PATH\n");
        return 1;
    }
    int64_t started = 0, done = 0, running = 0;
    int64_t t0 = bench_now_us(), cap_at = cap_s ? t0 + cap_s * 1000000 : INT64_MAX, limit = n;
    bool capped = false;
    while (done < started || started < limit) {
        if (started < limit && bench_now_us() >= cap_at) {
            capped = true;
            limit = started; /* start no more; wait for those running */
        }
        while (running < jobs && started < limit) {
            pid_t pid;
            int rc = posix_spawn(&pid, path, NULL, NULL, args, environ);
            if (rc) {
                fprintf(stderr, "base_spawn: posix_spawn %s: %s\n", path, strerror(rc));
                return 1;
            }
            started++;
            running++;
        }
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "base_spawn: waitpid: %s\n", strerror(errno));
            return 1;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "base_spawn: true failed\n");
            return 1;
        }
        running--;
        done++;
    }
    double s = (double)(bench_now_us() - t0) / 1e6;
    printf("n=%" PRId64 " done=%" PRId64 " jobs=%" PRId64 " capped=%d elapsed_s=%.4f rate=%.0f\n", n, done, jobs,
           capped ? 1 : 0, s, (double)done / s);
    return 0;
}
