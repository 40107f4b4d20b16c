/* base_sqlite: the bare cost of the farm's rows in SQLite, which the farm's
 * durable throughput is held against; also the filler that gives the
 * scale figures a database holding many tasks.
 *
 * The database is made by farm_store_open, so it has the farm's schema,
 * indexes and trigger and the farm's pragmas (WAL, synchronous=NORMAL).
 * Phase one inserts N no-op tasks with the farm's own statements
 * (farm_store_job_insert + farm_store_task_insert), one job and one
 * transaction per batch of B, as the ventilator stores a submit of B.
 * Phase two completes them on a plain connection, B per transaction, with
 * the rows the sink leaves for a completed task: an attempts row, a
 * results row and the task's update to completed (which fires the farm's
 * counting trigger). No lease, no start report, no feed: only the rows.
 *
 * usage: base_sqlite [--n N] [--batch B] [--db PATH [--keep]]
 * prints: n=N batch=B insert_rate=R update_rate=R rate=R (tasks/s over both phases)
 * Without --db it works in a temp file it removes; --keep leaves PATH
 * (a farm can then be started on it: every task is completed).
 */
#include "bench.h"

#include "farm_store.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t s_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_insert(const char *path, int64_t n, int64_t batch) {
    int err = 0;
    farm_store_t *st = farm_store_open(path, false, &err);
    if (!st) {
        fprintf(stderr, "base_sqlite: cannot open %s (%d)\n", path, err);
        return -1;
    }
    farm_task_spec_t spec = {.type = {"noop", 4}, .priority = 0, .max_attempts = 3};
    int64_t now = s_wall_ms();
    for (int64_t done = 0; done < n;) {
        int64_t b = n - done < batch ? n - done : batch, job, id;
        if (farm_store_begin(st) || farm_store_job_insert(st, (farm_str_t){0}, (farm_str_t){0}, now, b, &job))
            goto fail;
        for (int64_t i = 0; i < b; i++)
            if (farm_store_task_insert(st, job, &spec, now, &id))
                goto fail;
        if (farm_store_commit(st))
            goto fail;
        done += b;
    }
    farm_store_close(&st, false);
    return 0;
fail:
    farm_store_rollback(st);
    farm_store_close(&st, false);
    return -1;
}

static int s_complete(const char *path, int64_t n, int64_t batch) {
    sqlite3 *db = NULL;
    sqlite3_stmt *att = NULL, *res = NULL, *upd = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO attempts(task, attempt, worker, started_ms, finished_ms)"
                           " VALUES (?1, 1, ?2, ?3, ?3)",
                           -1, &att, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO results(task, attempt, ok, result, stored_ms) VALUES (?1, 1, 1, ?2, ?3)",
                           -1, &res, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "UPDATE tasks SET state = 3, progress = 100, attempts = 1, worker = ?2,"
                           " started_ms = ?3, finished_ms = ?3 WHERE id = ?1",
                           -1, &upd, NULL) != SQLITE_OK)
        goto out;
    static const unsigned char nil = 0xc0; /* a no-op's result: MessagePack nil */
    int64_t now = s_wall_ms();
    for (int64_t id = 1; id <= n;) {
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            goto out;
        for (int64_t i = 0; i < batch && id <= n; i++, id++) {
            const char *w = (id & 1) ? "w1" : "w2";
            sqlite3_bind_int64(att, 1, id);
            sqlite3_bind_text(att, 2, w, -1, SQLITE_STATIC);
            sqlite3_bind_int64(att, 3, now);
            sqlite3_bind_int64(res, 1, id);
            sqlite3_bind_blob(res, 2, &nil, 1, SQLITE_STATIC);
            sqlite3_bind_int64(res, 3, now);
            sqlite3_bind_int64(upd, 1, id);
            sqlite3_bind_text(upd, 2, w, -1, SQLITE_STATIC);
            sqlite3_bind_int64(upd, 3, now);
            if (sqlite3_step(att) != SQLITE_DONE || sqlite3_step(res) != SQLITE_DONE ||
                sqlite3_step(upd) != SQLITE_DONE)
                goto out;
            sqlite3_reset(att);
            sqlite3_reset(res);
            sqlite3_reset(upd);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "base_sqlite: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(att);
    sqlite3_finalize(res);
    sqlite3_finalize(upd);
    sqlite3_close(db);
    return rc;
}

int main(int argc, char **argv) {
    int64_t n = 100000, batch = 1000;
    const char *path = NULL;
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n"))
            n = bench_int("--n", v, 1, 100000000), i++;
        else if (!strcmp(argv[i], "--batch"))
            batch = bench_int("--batch", v, 1, 1000000), i++;
        else if (!strcmp(argv[i], "--db") && v)
            path = v, i++;
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else {
            fprintf(stderr, "usage: base_sqlite [--n N] [--batch B] [--db PATH [--keep]]\n");
            return 2;
        }
    }
    char tmp[256];
    if (!path) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/base_sqlite-%d.db", dir && *dir ? dir : "/tmp", (int)getpid());
        path = tmp;
        keep = false;
    }
    int64_t t0 = bench_now_us();
    int rc = s_insert(path, n, batch);
    int64_t t1 = bench_now_us();
    if (!rc)
        rc = s_complete(path, n, batch);
    int64_t t2 = bench_now_us();
    if (!keep) {
        char p[300];
        const char *sfx[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s%s", path, sfx[i]);
            unlink(p);
        }
    }
    if (rc)
        return 1;
    printf("n=%" PRId64 " batch=%" PRId64 " insert_rate=%.0f update_rate=%.0f rate=%.0f\n", n, batch,
           (double)n * 1e6 / (double)(t1 - t0), (double)n * 1e6 / (double)(t2 - t1),
           (double)n * 1e6 / (double)(t2 - t0));
    return 0;
}
