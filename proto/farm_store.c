/* farm_store: SQLite persistence of jobs, tasks, results and attempts
 * (see farm_store.h for the design). Statements are declared once in the
 * STMT_MAP table and prepared at open; no SQL text is built at run time. */
#include "farm_store.h"
#include "farm_vfs.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_state.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATE_COLS "n0, n1, n2, n3, n4, n5"
#define TASK_COLS                                                                                       \
    "id, job, type, state, priority, attempts, max_attempts, progress, message, worker, created_ms, " \
    "started_ms, finished_ms, error"
#define TASK_COLS_T                                                                                         \
    "t.id, t.job, t.type, t.state, t.priority, t.attempts, t.max_attempts, t.progress, t.message, t.worker, " \
    "t.created_ms, t.started_ms, t.finished_ms, t.error"
#define JOB_COLS "id, name, created_ms, finished_ms, total, n0, n1, n2, n3, n4, n5, progress_sum"
/* The derived state of a job from its counters (see the spec's JOBVIEW). */
#define JOB_STATE_EXPR                                                        \
    "(CASE WHEN total > 0 AND n3 = total THEN 3 "                             \
    "WHEN n0 + n1 + n2 = 0 AND n4 > 0 THEN 4 "                                \
    "WHEN n0 + n1 + n2 = 0 AND n5 > 0 THEN 5 "                                \
    "WHEN n1 + n2 + n3 + n4 + n5 > 0 THEN 1 ELSE 0 END)"

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1),"
    " n0 INTEGER NOT NULL DEFAULT 0, n1 INTEGER NOT NULL DEFAULT 0, n2 INTEGER NOT NULL DEFAULT 0,"
    " n3 INTEGER NOT NULL DEFAULT 0, n4 INTEGER NOT NULL DEFAULT 0, n5 INTEGER NOT NULL DEFAULT 0,"
    " jobs INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO totals(id) VALUES (1);"
    "CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, key TEXT UNIQUE,"
    " created_ms INTEGER NOT NULL, finished_ms INTEGER, total INTEGER NOT NULL DEFAULT 0,"
    " n0 INTEGER NOT NULL DEFAULT 0, n1 INTEGER NOT NULL DEFAULT 0, n2 INTEGER NOT NULL DEFAULT 0,"
    " n3 INTEGER NOT NULL DEFAULT 0, n4 INTEGER NOT NULL DEFAULT 0, n5 INTEGER NOT NULL DEFAULT 0,"
    " progress_sum INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS tasks(id INTEGER PRIMARY KEY AUTOINCREMENT, job INTEGER NOT NULL, type TEXT NOT NULL,"
    " args BLOB, state INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, due_ms INTEGER NOT NULL,"
    " progress INTEGER NOT NULL DEFAULT 0, message TEXT, worker TEXT, created_ms INTEGER NOT NULL,"
    " started_ms INTEGER, finished_ms INTEGER, error TEXT, cancel_req INTEGER NOT NULL DEFAULT 0,"
    " attempt_base INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS tasks_ready ON tasks(type, priority DESC, id) WHERE state = 0 AND worker IS NULL;"
    "CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job, id);"
    /* What each worker holds (dispatched or running) — only live tasks: a
     * completed task keeps its worker for the view, and an index over those
     * made every heartbeat's reconciliation walk a worker's whole past; and
     * only leased ones: a pending task not yet dispatched has no worker, and
     * keeping it out spares every submitted task an index entry. */
    "DROP INDEX IF EXISTS tasks_worker;"
    "DROP INDEX IF EXISTS tasks_held;"
    "CREATE INDEX IF NOT EXISTS tasks_leased ON tasks(worker) WHERE worker IS NOT NULL AND state IN (0, 1);"
    "CREATE INDEX IF NOT EXISTS tasks_retry ON tasks(due_ms) WHERE state = 2;"
    /* Failed and cancelled tasks, few among many: their own small table, kept
     * by the trigger, so the latest failures never scan the whole farm. */
    "CREATE TABLE IF NOT EXISTS bad(task INTEGER PRIMARY KEY, state INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS bad_state ON bad(state, task);"
    "CREATE TABLE IF NOT EXISTS results(task INTEGER PRIMARY KEY, attempt INTEGER NOT NULL, ok INTEGER NOT NULL,"
    " result BLOB, stored_ms INTEGER NOT NULL, dups INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS attempts(task INTEGER NOT NULL, attempt INTEGER NOT NULL, worker TEXT,"
    " started_ms INTEGER, finished_ms INTEGER, error TEXT, PRIMARY KEY (task, attempt)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS perf(sec INTEGER PRIMARY KEY, completed INTEGER NOT NULL, hist BLOB);"
    /* Records a task's first successful result brought (ingest): one row per record, its index in the
     * task's input and its MessagePack bytes. The key makes a second store of a record a no-op. */
    "CREATE TABLE IF NOT EXISTS records(task INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (task, idx)) WITHOUT ROWID;"
    /* One trigger keeps a job's counters and progress and the farm's totals. */
    "CREATE TRIGGER IF NOT EXISTS tasks_counts AFTER UPDATE OF state, progress ON tasks"
    " WHEN OLD.state != NEW.state OR OLD.progress != NEW.progress BEGIN"
    " UPDATE jobs SET n0 = n0 + (NEW.state = 0) - (OLD.state = 0), n1 = n1 + (NEW.state = 1) - (OLD.state = 1),"
    "  n2 = n2 + (NEW.state = 2) - (OLD.state = 2), n3 = n3 + (NEW.state = 3) - (OLD.state = 3),"
    "  n4 = n4 + (NEW.state = 4) - (OLD.state = 4), n5 = n5 + (NEW.state = 5) - (OLD.state = 5),"
    "  progress_sum = progress_sum + (CASE WHEN NEW.state >= 3 THEN 100 ELSE NEW.progress END)"
    "   - (CASE WHEN OLD.state >= 3 THEN 100 ELSE OLD.progress END),"
    "  finished_ms = CASE WHEN n3 + n4 + n5 + (NEW.state >= 3) - (OLD.state >= 3) = total"
    "   THEN max(coalesce(finished_ms, 0), coalesce(NEW.finished_ms, 0)) ELSE NULL END"
    "  WHERE id = NEW.job;"
    " UPDATE totals SET n0 = n0 + (NEW.state = 0) - (OLD.state = 0), n1 = n1 + (NEW.state = 1) - (OLD.state = 1),"
    "  n2 = n2 + (NEW.state = 2) - (OLD.state = 2), n3 = n3 + (NEW.state = 3) - (OLD.state = 3),"
    "  n4 = n4 + (NEW.state = 4) - (OLD.state = 4), n5 = n5 + (NEW.state = 5) - (OLD.state = 5)"
    "  WHERE id = 1 AND OLD.state != NEW.state;"
    " DELETE FROM bad WHERE task = OLD.id AND OLD.state >= 4 AND NEW.state < 4;"
    " INSERT OR REPLACE INTO bad(task, state) SELECT NEW.id, NEW.state WHERE NEW.state >= 4 AND NEW.state != OLD.state;"
    " END;";

/* XX(name, sql) */
#define STMT_MAP(XX)                                                                                            \
    XX(BEGIN, "BEGIN IMMEDIATE")                                                                                \
    XX(COMMIT, "COMMIT")                                                                                        \
    XX(ROLLBACK, "ROLLBACK")                                                                                    \
    XX(META_GET, "SELECT v FROM meta WHERE k = ?1")                                                             \
    XX(META_SET, "INSERT INTO meta(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v")          \
    XX(JOB_BY_KEY, "SELECT id FROM jobs WHERE key = ?1")                                                        \
    XX(JOB_INSERT, "INSERT INTO jobs(name, key, created_ms, total, n0) VALUES (?1, ?2, ?3, ?4, ?4)")           \
    XX(TOTALS_ADD_JOB, "UPDATE totals SET jobs = jobs + ?1, n0 = n0 + ?2 WHERE id = 1")                        \
    XX(TASK_INSERT, "INSERT INTO tasks(job, type, args, priority, max_attempts, timeout_ms, due_ms, created_ms)" \
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                                                  \
    XX(JOB_TASK_IDS, "SELECT id FROM tasks WHERE job = ?1 ORDER BY id")                                         \
    XX(JOB_TASK_COUNT, "SELECT total FROM jobs WHERE id = ?1")                                                  \
    XX(TASK_VIEW, "SELECT " TASK_COLS " FROM tasks WHERE id = ?1")                                              \
    XX(TASK_HISTORY, "SELECT attempt, worker, started_ms, finished_ms, error FROM attempts WHERE task = ?1"      \
                     " ORDER BY attempt")                                                                       \
    XX(JOB_VIEW, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1")                                                 \
    XX(RESULT_VIEW, "SELECT t.state, t.error, r.result FROM tasks t LEFT JOIN results r ON r.task = t.id"      \
                    " WHERE t.id = ?1")                                                                         \
    XX(LIST_JOB, "SELECT " TASK_COLS " FROM tasks WHERE job = ?1 AND id > ?2 AND (?3 < 0 OR state = ?3)"       \
                 " AND (?4 IS NULL OR type = ?4) ORDER BY job, id LIMIT ?5")                                    \
    XX(LIST_ALL, "SELECT " TASK_COLS " FROM tasks WHERE id > ?2 AND (?3 < 0 OR state = ?3)"                    \
                 " AND (?4 IS NULL OR type = ?4) ORDER BY id LIMIT ?5")                                         \
    XX(LIST_BAD, "SELECT " TASK_COLS_T " FROM bad b JOIN tasks t ON t.id = b.task WHERE b.state = ?3"          \
                 " AND b.task > ?2 AND (?4 IS NULL OR t.type = ?4) ORDER BY b.state, b.task LIMIT ?5")            \
    XX(JOBS_LIST, "SELECT " JOB_COLS " FROM jobs WHERE id > ?1 AND (?2 < 0 OR " JOB_STATE_EXPR " = ?2)"        \
                  " ORDER BY id LIMIT ?3")                                                                      \
    XX(TOTALS, "SELECT " STATE_COLS ", jobs FROM totals WHERE id = 1")                                          \
    XX(JOB_EXISTS, "SELECT 1 FROM jobs WHERE id = ?1")                                                          \
    XX(TASK_STATE, "SELECT state, worker, attempts, max_attempts, cancel_req, job, created_ms, progress,"      \
                   " attempt_base FROM tasks WHERE id = ?1")                                                               \
    XX(JOB_TASKS_OPEN, "SELECT id FROM tasks WHERE job = ?1 AND state IN (0, 1, 2) ORDER BY id")               \
    XX(JOB_TASKS_DEAD, "SELECT id FROM tasks WHERE job = ?1 AND state IN (4, 5) ORDER BY id")                  \
    XX(SET_CANCELLED, "UPDATE tasks SET state = 5, finished_ms = ?2, worker = NULL WHERE id = ?1")             \
    XX(SET_CANCEL_REQ, "UPDATE tasks SET cancel_req = 1 WHERE id = ?1")                                        \
    XX(SET_RETRY, "UPDATE tasks SET state = 0, attempt_base = attempts, worker = NULL, due_ms = ?2,"          \
                  " finished_ms = NULL,"                                                                        \
                  " started_ms = NULL, cancel_req = 0, progress = 0, message = NULL WHERE id = ?1")            \
    XX(JOB_OPEN_COUNT, "SELECT n0 + n1 + n2, " STATE_COLS " FROM jobs WHERE id = ?1")                           \
    XX(DEL_RESULTS, "DELETE FROM results WHERE task IN (SELECT id FROM tasks WHERE job = ?1)")                  \
    XX(DEL_ATTEMPTS, "DELETE FROM attempts WHERE task IN (SELECT id FROM tasks WHERE job = ?1)")                \
    XX(DEL_TASKS, "DELETE FROM tasks WHERE job = ?1")                                                          \
    XX(DEL_JOB, "DELETE FROM jobs WHERE id = ?1")                                                              \
    XX(TOTALS_SUB, "UPDATE totals SET n0 = n0 - ?1, n1 = n1 - ?2, n2 = n2 - ?3, n3 = n3 - ?4, n4 = n4 - ?5,"    \
                   " n5 = n5 - ?6, jobs = jobs - 1 WHERE id = 1")                                                \
    XX(READY, "SELECT id, job, priority, timeout_ms, type, args FROM tasks WHERE state = 0 AND worker IS NULL"  \
              " AND type = ?1 AND due_ms <= ?2 ORDER BY priority DESC, id LIMIT ?3")                             \
    XX(CLAIM_MANY, "UPDATE tasks SET worker = ?2, attempts = attempts + 1, message = NULL"                     \
                   " WHERE id IN (SELECT value FROM json_each(?1)) AND state = 0 AND worker IS NULL"          \
                   " RETURNING id, attempts")                                                                  \
    XX(DUE, "SELECT id FROM tasks WHERE state = 2 AND due_ms <= ?1 ORDER BY due_ms LIMIT 1000")                \
    XX(SET_PENDING, "UPDATE tasks SET state = 0, worker = NULL WHERE id = ?1")                                 \
    XX(NEXT_RETRY, "SELECT min(due_ms) FROM tasks WHERE state = 2")                                            \
    XX(NEXT_DELAYED, "SELECT min(due_ms) FROM tasks WHERE state = 0 AND worker IS NULL AND due_ms > ?1")        \
    XX(PENDING, "SELECT n0 FROM totals WHERE id = 1")                                                          \
    XX(LEASE_HOLDERS, "SELECT DISTINCT worker FROM tasks WHERE worker IS NOT NULL AND state IN (0, 1)")       \
    XX(WORKER_TASKS, "SELECT id, state FROM tasks WHERE worker = ?1 AND state IN (0, 1)")                      \
    XX(UNLEASE, "UPDATE tasks SET worker = NULL, attempts = max(attempts - 1, attempt_base) WHERE id = ?1")    \
    XX(STARTED, "UPDATE tasks SET state = 1, started_ms = ?4, worker = ?3, progress = 0, message = NULL"       \
                " WHERE id = ?1 AND attempts = ?2 AND state = 0")                                               \
    XX(ATTEMPT_START, "INSERT INTO attempts(task, attempt, worker, started_ms) VALUES (?1, ?2, ?3, ?4)"         \
                      " ON CONFLICT(task, attempt) DO UPDATE SET worker = excluded.worker,"                     \
                      " started_ms = coalesce(started_ms, excluded.started_ms)")                                \
    XX(ATTEMPT_END, "INSERT INTO attempts(task, attempt, worker, started_ms, finished_ms, error)"               \
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(task, attempt) DO UPDATE SET"                 \
                    " worker = coalesce(excluded.worker, worker), started_ms = coalesce(started_ms,"           \
                    " excluded.started_ms), finished_ms = excluded.finished_ms, error = excluded.error")        \
    XX(PROGRESS, "UPDATE tasks SET progress = ?3, message = ?4 WHERE id = ?1 AND attempts = ?2 AND state = 1") \
    XX(RESULT_GET, "SELECT ok FROM results WHERE task = ?1")                                                   \
    XX(RESULT_DUP, "UPDATE results SET dups = dups + 1 WHERE task = ?1")                                       \
    XX(RESULT_PUT, "INSERT OR REPLACE INTO results(task, attempt, ok, result, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5)") \
    XX(SET_COMPLETED, "UPDATE tasks SET state = 3, progress = 100, finished_ms = ?2, worker = ?3,"            \
                      " attempts = max(attempts, ?4), started_ms = coalesce(started_ms, ?5) WHERE id = ?1")     \
    XX(SET_FAILED, "UPDATE tasks SET state = ?2, finished_ms = ?3, error = ?4, worker = NULL,"                \
                   " started_ms = coalesce(started_ms, ?5) WHERE id = ?1")                                      \
    XX(SET_RETRYING, "UPDATE tasks SET state = 2, due_ms = ?2, error = ?3, worker = NULL, progress = 0"       \
                     " WHERE id = ?1")                                                                          \
    XX(PERF_ADD, "INSERT INTO perf(sec, completed, hist) VALUES (?1, ?2, ?3) ON CONFLICT(sec) DO UPDATE SET"   \
                 " completed = completed + excluded.completed, hist = excluded.hist")                         \
    XX(PERF_GET, "SELECT hist FROM perf WHERE sec = ?1")                                                       \
    XX(PERF_READ, "SELECT sec, completed, hist FROM perf WHERE sec > ?1 - 60 AND sec <= ?1")                    \
    XX(PERF_PRUNE, "DELETE FROM perf WHERE sec < ?1 - 3600")                                                    \
    XX(RECORD_PUT, "INSERT OR IGNORE INTO records(task, idx, data) VALUES (?1, ?2, ?3)")                        \
    XX(RECORDS_GET, "SELECT idx, data FROM records WHERE task = ?1 ORDER BY idx")                                \
    XX(DEL_BAD, "DELETE FROM bad WHERE task IN (SELECT id FROM tasks WHERE job = ?1)")                          \
    XX(DEL_RECORDS, "DELETE FROM records WHERE task IN (SELECT id FROM tasks WHERE job = ?1)")                  \
    XX(CHECK, "PRAGMA integrity_check")

enum {
#define XX(n, q) ST_##n,
    STMT_MAP(XX)
#undef XX
    ST__COUNT
};

static const char *s_sql[ST__COUNT] = {
#define XX(n, q) [ST_##n] = q,
    STMT_MAP(XX)
#undef XX
};

struct farm_store {
    sqlite3 *db;                   /* the connection */
    sqlite3_stmt *st[ST__COUNT];   /* prepared once at open */
    farm_change_fn *on_change;     /* state change hook, or NULL */
    void *ud;                      /* its user data */
    unsigned rng;                  /* jitter of back-off */
    int64_t busy_since;            /* when the current wait for the lock began (us) */
};

/* ---- helpers ------------------------------------------------------------ */

static sqlite3_stmt *s_st(farm_store_t *s, int i) {
    sqlite3_stmt *st = s->st[i];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static int s_fail(farm_store_t *s, const char *what) {
    farm_log(FARM_LOG_ERROR, "store", "op=%s err=\"%s\"", what, sqlite3_errmsg(s->db));
    return FARM_ESTORE;
}

/* Step a statement that returns no row (or whose rows are ignored). */
static int s_exec(farm_store_t *s, sqlite3_stmt *st, const char *what) {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(s, what);
}

static void s_bind_str(sqlite3_stmt *st, int i, farm_str_t v) {
    if (v.ptr)
        sqlite3_bind_text(st, i, v.ptr, (int)v.len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void s_bind_cstr(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void s_pack_col_str(msgpack_packer *pk, sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        msgpack_pack_nil(pk);
        return;
    }
    const char *t = (const char *)sqlite3_column_text(st, col);
    farm_pack_strn(pk, t ? t : "", (size_t)sqlite3_column_bytes(st, col));
}

static void s_pack_col_int(msgpack_packer *pk, sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, sqlite3_column_int64(st, col));
}

static void s_change(farm_store_t *s, int64_t id, int64_t job, int state, int progress, int64_t attempt,
                     const char *worker, int64_t ms) {
    if (!s->on_change)
        return;
    farm_change_t c = {id, job, state, progress, attempt, worker, ms};
    s->on_change(s->ud, &c);
}

/* ---- open / close ------------------------------------------------------- */

#define STORE_BUSY_MAX_MS 10000

/* Busy handler: keep trying for STORE_BUSY_MAX_MS, briefly sleeping. */
static int s_busy(void *ud, int count) {
    farm_store_t *s = ud;
    if (count == 0)
        s->busy_since = farm_mono_us();
    if (farm_mono_us() - s->busy_since > STORE_BUSY_MAX_MS * 1000LL)
        return 0;
    struct timespec ts = {0, count < 20 ? 20000 : 200000}; /* 20 us, then 200 us */
    nanosleep(&ts, NULL);
    return 1;
}

/* SQLite's memory statistics take a global mutex on every allocation; the
 * farm never reads them. Only possible before SQLite is initialised: the
 * first open of the process does it (later calls get SQLITE_MISUSE, which
 * changes nothing). */
static void s_config_once(void) {
    static bool done;
    if (done)
        return;
    done = true;
    int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (rc != SQLITE_OK && rc != SQLITE_MISUSE)
        farm_log(FARM_LOG_WARN, "store", "op=config err=\"%s\"", sqlite3_errstr(rc));
}

farm_store_t *farm_store_open(const char *path, bool sync_full, int *err) {
    s_config_once();
    farm_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->rng = (unsigned)getpid() ^ (unsigned)time(NULL);
    /* Commits write their WAL frames in one system call (farm_vfs.c); if
     * the shim cannot be had, SQLite's own VFS does the same job slower. */
    const char *vfs = FARM_VFS_NAME;
    int rc = farm_vfs_register();
    if (rc != SQLITE_OK) {
        farm_log(FARM_LOG_WARN, "store", "op=vfs err=\"%s\" using=default", sqlite3_errstr(rc));
        vfs = NULL;
    }
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        farm_log(FARM_LOG_ERROR, "store", "op=open path=%s err=\"%s\"", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    /* SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms between tries:
     * with two writers (ventilator and sink) every collision would stall
     * dispatch for milliseconds. Ours retries every 50 us up to 10 s. */
    sqlite3_busy_handler(s->db, s_busy, s);
    char *msg = NULL;
    /* No mmap of the database: in WAL mode the ventilator and the sink
     * each remapped the file whenever the other made it grow, and every
     * munmap is a TLB shootdown across CPUs (measured: one-task submit p50
     * 630 -> 505 us, p99 5.4 -> 3.0 ms without it; throughput unchanged).
     * Pages come from a 16 MiB page cache per connection instead. */
    const char *pragmas = sync_full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                                      " PRAGMA mmap_size=0; PRAGMA cache_size=-16384;"
                                      " PRAGMA wal_autocheckpoint=20000;"
                                    : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;"
                                      " PRAGMA mmap_size=0; PRAGMA cache_size=-16384;"
                                      " PRAGMA wal_autocheckpoint=20000;";
    _Static_assert(FARM_STORE_WAL_FALLBACK == 20000, "the pragma above says 20000");
    /* Switching a new database to WAL answers SQLITE_BUSY at once, without
     * the busy handler, while another process (the ventilator and the sink
     * start together) opens it too: retry for as long as the busy timeout. */
    int prc;
    for (int tries = 0; (prc = sqlite3_exec(s->db, pragmas, NULL, NULL, &msg)) == SQLITE_BUSY && tries < 1000;
         tries++) {
        sqlite3_free(msg);
        msg = NULL;
        sqlite3_sleep(10);
    }
    if (prc != SQLITE_OK || sqlite3_exec(s->db, s_schema, NULL, NULL, &msg) != SQLITE_OK) {
        farm_log(FARM_LOG_ERROR, "store", "op=schema path=%s err=\"%s\"", path, msg ? msg : "?");
        sqlite3_free(msg);
        goto fail;
    }
    for (int i = 0; i < ST__COUNT; i++)
        if (sqlite3_prepare_v3(s->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            farm_log(FARM_LOG_ERROR, "store", "op=prepare stmt=%d err=\"%s\"", i, sqlite3_errmsg(s->db));
            goto fail;
        }
    return s;
fail:
    farm_store_close(&s, false);
    *err = FARM_ESTORE;
    return NULL;
}

void farm_store_close(farm_store_t **sp, bool checkpoint) {
    farm_store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db) {
        /* PASSIVE never waits on the other process; whichever of the two
         * closes last checkpoints everything anyway (SQLite does that on
         * the last close), so a clean stop leaves no WAL behind. */
        if (checkpoint && sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
            farm_log(FARM_LOG_WARN, "store", "op=checkpoint err=\"%s\"", sqlite3_errmsg(s->db));
        sqlite3_close(s->db);
    }
    free(s);
    *sp = NULL;
}

/* ---- background checkpoints ------------------------------------------ */

struct farm_checkpointer {
    sqlite3 *db;          /* its own connection */
    int64_t interval_ms;  /* between checkpoints */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* signalled to stop */
    bool stop;            /* under mu */
};

static void *s_checkpoint_thread(void *arg) {
    farm_checkpointer_t *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + c->interval_ms * 1000000;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        int rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
        if (c->stop)
            break;
        if (rc != 0 && rc != ETIMEDOUT)
            continue;
        pthread_mutex_unlock(&c->mu);
        int log = 0, done = 0;
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            farm_log(FARM_LOG_WARN, "store", "op=checkpoint err=\"%s\"", sqlite3_errmsg(c->db));
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

farm_checkpointer_t *farm_checkpointer_start(const char *path, int64_t interval_ms) {
    farm_checkpointer_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->interval_ms = interval_ms > 0 ? interval_ms : 100;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(c->db, 1000) != SQLITE_OK ||
        /* A checkpoint streams pages from the WAL to the database: a small
         * page cache does (the default 2 MiB, churned by a thread of its
         * own, kept the sink's heap 10 MB larger). */
        sqlite3_exec(c->db, "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-256;", NULL, NULL, NULL) != SQLITE_OK) {
        farm_log(FARM_LOG_WARN, "store", "op=checkpointer path=%s err=\"%s\"", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    int rc = pthread_mutex_init(&c->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&c->cv, NULL)) != 0)
        pthread_mutex_destroy(&c->mu);
    if (rc == 0 && (rc = pthread_create(&c->thread, NULL, s_checkpoint_thread, c)) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
    }
    if (rc != 0) {
        farm_log(FARM_LOG_WARN, "store", "op=checkpointer err=\"%s\"", strerror(rc));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    return c;
}

void farm_checkpointer_stop(farm_checkpointer_t **cp) {
    farm_checkpointer_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    sqlite3_close(c->db);
    free(c);
    *cp = NULL;
}

void farm_store_on_change(farm_store_t *s, farm_change_fn *fn, void *ud) {
    s->on_change = fn;
    s->ud = ud;
}

int farm_store_begin(farm_store_t *s) { return s_exec(s, s_st(s, ST_BEGIN), "begin"); }
int farm_store_commit(farm_store_t *s) { return s_exec(s, s_st(s, ST_COMMIT), "commit"); }
void farm_store_rollback(farm_store_t *s) {
    if (!sqlite3_get_autocommit(s->db))
        (void)s_exec(s, s_st(s, ST_ROLLBACK), "rollback");
}

/* ---- back-off policy ---------------------------------------------------- */

static int s_meta_set(farm_store_t *s, const char *k, double v) {
    sqlite3_stmt *st = s_st(s, ST_META_SET);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, v);
    return s_exec(s, st, "meta_set");
}

static double s_meta_get(farm_store_t *s, const char *k, double def) {
    sqlite3_stmt *st = s_st(s, ST_META_GET);
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    double v = def;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    return v;
}

int farm_store_set_backoff(farm_store_t *s, const farm_backoff_t *b) {
    int rc = farm_store_begin(s);
    if (rc)
        return rc;
    if ((rc = s_meta_set(s, "backoff_base_ms", (double)b->base_ms)) ||
        (rc = s_meta_set(s, "backoff_factor", b->factor)) ||
        (rc = s_meta_set(s, "backoff_cap_ms", (double)b->cap_ms)) ||
        (rc = s_meta_set(s, "backoff_jitter_pct", b->jitter_pct))) {
        farm_store_rollback(s);
        return rc;
    }
    return farm_store_commit(s);
}

void farm_store_get_backoff(farm_store_t *s, farm_backoff_t *b) {
    b->base_ms = (int64_t)s_meta_get(s, "backoff_base_ms", 1000);
    b->factor = s_meta_get(s, "backoff_factor", 2.0);
    b->cap_ms = (int64_t)s_meta_get(s, "backoff_cap_ms", 300000);
    b->jitter_pct = (int)s_meta_get(s, "backoff_jitter_pct", 20);
}

static int64_t s_backoff(farm_store_t *s, int64_t attempt) {
    farm_backoff_t b;
    farm_store_get_backoff(s, &b);
    double d = (double)b.base_ms * pow(b.factor, (double)(attempt > 1 ? attempt - 1 : 0));
    if (d > (double)b.cap_ms)
        d = (double)b.cap_ms;
    if (b.jitter_pct > 0) {
        double r = (double)(rand_r(&s->rng) % 2001 - 1000) / 1000.0; /* -1..1 */
        d += d * r * b.jitter_pct / 100.0;
    }
    return d < 0 ? 0 : (int64_t)d;
}

/* ---- submit ------------------------------------------------------------- */

int farm_store_job_by_key(farm_store_t *s, farm_str_t key, int64_t *job) {
    sqlite3_stmt *st = s_st(s, ST_JOB_BY_KEY);
    s_bind_str(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *job = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "job_by_key");
}

int farm_store_job_insert(farm_store_t *s, farm_str_t name, farm_str_t key, int64_t now, int64_t total,
                          int64_t *job) {
    sqlite3_stmt *st = s_st(s, ST_JOB_INSERT);
    s_bind_str(st, 1, name);
    s_bind_str(st, 2, key);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, total);
    int rc = s_exec(s, st, "job_insert");
    if (rc)
        return rc;
    *job = sqlite3_last_insert_rowid(s->db);
    st = s_st(s, ST_TOTALS_ADD_JOB);
    sqlite3_bind_int64(st, 1, 1);
    sqlite3_bind_int64(st, 2, total);
    return s_exec(s, st, "totals_add_job");
}

int farm_store_task_insert(farm_store_t *s, int64_t job, const farm_task_spec_t *t, int64_t now, int64_t *id) {
    sqlite3_stmt *st = s_st(s, ST_TASK_INSERT);
    sqlite3_bind_int64(st, 1, job);
    s_bind_str(st, 2, t->type);
    if (t->args)
        sqlite3_bind_blob(st, 3, t->args, (int)t->args_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, t->priority);
    sqlite3_bind_int64(st, 5, t->max_attempts);
    sqlite3_bind_int64(st, 6, t->timeout_ms);
    sqlite3_bind_int64(st, 7, now + t->delay_ms);
    sqlite3_bind_int64(st, 8, now);
    int rc = s_exec(s, st, "task_insert");
    if (rc)
        return rc;
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int farm_store_pack_job_task_ids(farm_store_t *s, int64_t job, msgpack_packer *pk) {
    sqlite3_stmt *st = s_st(s, ST_JOB_TASK_COUNT);
    sqlite3_bind_int64(st, 1, job);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return FARM_ENOTFOUND;
    }
    int64_t total = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    st = s_st(s, ST_JOB_TASK_IDS);
    sqlite3_bind_int64(st, 1, job);
    msgpack_pack_array(pk, (size_t)total);
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < total) {
        msgpack_pack_int64(pk, sqlite3_column_int64(st, 0));
        n++;
    }
    sqlite3_reset(st);
    for (; n < total; n++) /* cannot happen while total is kept by the store */
        msgpack_pack_nil(pk);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : s_fail(s, "job_task_ids");
}

/* ---- views -------------------------------------------------------------- */

/* Pack the TASKVIEW of the current row of st (TASK_COLS). */
static void s_pack_taskview(farm_store_t *s, sqlite3_stmt *st, bool history, farm_why_fn *why, void *ud,
                            msgpack_packer *pk) {
    int state = sqlite3_column_int(st, 3);
    const char *type = (const char *)sqlite3_column_text(st, 2);
    const char *reason = NULL;
    if (why && state == FARM_TASK_PENDING && sqlite3_column_type(st, 9) == SQLITE_NULL &&
        sqlite3_column_type(st, 8) == SQLITE_NULL)
        reason = why(ud, type ? type : "");
    msgpack_pack_map(pk, history ? 15 : 14);
    farm_pack_kv_int(pk, "id", sqlite3_column_int64(st, 0));
    farm_pack_kv_int(pk, "job", sqlite3_column_int64(st, 1));
    farm_pack_str(pk, "type");
    s_pack_col_str(pk, st, 2);
    farm_pack_kv_str(pk, "state", farm_state_name(state));
    farm_pack_kv_int(pk, "priority", sqlite3_column_int64(st, 4));
    farm_pack_kv_int(pk, "attempts", sqlite3_column_int64(st, 5));
    farm_pack_kv_int(pk, "max_attempts", sqlite3_column_int64(st, 6));
    farm_pack_kv_int(pk, "progress", sqlite3_column_int64(st, 7));
    farm_pack_str(pk, "message");
    if (reason)
        farm_pack_str(pk, reason);
    else
        s_pack_col_str(pk, st, 8);
    farm_pack_str(pk, "worker");
    s_pack_col_str(pk, st, 9);
    farm_pack_str(pk, "created_ms");
    s_pack_col_int(pk, st, 10);
    farm_pack_str(pk, "started_ms");
    s_pack_col_int(pk, st, 11);
    farm_pack_str(pk, "finished_ms");
    s_pack_col_int(pk, st, 12);
    farm_pack_str(pk, "error");
    s_pack_col_str(pk, st, 13);
    if (!history)
        return;
    /* The attempt history: every attempt's worker, times and error. */
    int64_t id = sqlite3_column_int64(st, 0);
    sqlite3_stmt *h = s_st(s, ST_TASK_HISTORY);
    sqlite3_bind_int64(h, 1, id);
    size_t n = 0;
    while (sqlite3_step(h) == SQLITE_ROW)
        n++;
    sqlite3_reset(h);
    farm_pack_str(pk, "history");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n && sqlite3_step(h) == SQLITE_ROW; i++) {
        msgpack_pack_map(pk, 5);
        farm_pack_kv_int(pk, "attempt", sqlite3_column_int64(h, 0));
        farm_pack_str(pk, "worker");
        s_pack_col_str(pk, h, 1);
        farm_pack_str(pk, "started_ms");
        s_pack_col_int(pk, h, 2);
        farm_pack_str(pk, "finished_ms");
        s_pack_col_int(pk, h, 3);
        farm_pack_str(pk, "error");
        s_pack_col_str(pk, h, 4);
    }
    sqlite3_reset(h);
}

int farm_store_pack_task(farm_store_t *s, int64_t id, bool history, farm_why_fn *why, void *ud, msgpack_packer *pk) {
    sqlite3_stmt *st = s_st(s, ST_TASK_VIEW);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "task_view");
    }
    s_pack_taskview(s, st, history, why, ud, pk);
    sqlite3_reset(st);
    return 0;
}

static const char *s_job_state(int64_t total, const int64_t n[6]) {
    int64_t open = n[0] + n[1] + n[2];
    if (total > 0 && n[3] == total)
        return "completed";
    if (open == 0 && n[4] > 0)
        return "failed";
    if (open == 0 && n[5] > 0)
        return "cancelled";
    if (n[1] + n[2] + n[3] + n[4] + n[5] > 0)
        return "running";
    return "pending";
}

/* Pack the JOBVIEW of the current row of st (JOB_COLS). */
static void s_pack_jobview(sqlite3_stmt *st, msgpack_packer *pk) {
    int64_t total = sqlite3_column_int64(st, 4), n[6];
    for (int i = 0; i < 6; i++)
        n[i] = sqlite3_column_int64(st, 5 + i);
    int64_t psum = sqlite3_column_int64(st, 11);
    msgpack_pack_map(pk, 8);
    farm_pack_kv_int(pk, "id", sqlite3_column_int64(st, 0));
    farm_pack_str(pk, "name");
    s_pack_col_str(pk, st, 1);
    farm_pack_str(pk, "created_ms");
    s_pack_col_int(pk, st, 2);
    farm_pack_str(pk, "finished_ms");
    s_pack_col_int(pk, st, 3);
    farm_pack_kv_int(pk, "total", total);
    farm_pack_str(pk, "counts");
    msgpack_pack_map(pk, 6);
    for (int i = 0; i < 6; i++)
        farm_pack_kv_int(pk, farm_state_name(i), n[i]);
    farm_pack_kv_int(pk, "progress", total > 0 ? psum / total : 0);
    farm_pack_kv_str(pk, "state", s_job_state(total, n));
}

int farm_store_pack_job(farm_store_t *s, int64_t id, msgpack_packer *pk) {
    sqlite3_stmt *st = s_st(s, ST_JOB_VIEW);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "job_view");
    }
    s_pack_jobview(st, pk);
    sqlite3_reset(st);
    return 0;
}

int farm_store_pack_result(farm_store_t *s, int64_t id, msgpack_packer *pk) {
    sqlite3_stmt *st = s_st(s, ST_RESULT_VIEW);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "result_view");
    }
    msgpack_pack_map(pk, 4);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_kv_str(pk, "state", farm_state_name(sqlite3_column_int(st, 0)));
    farm_pack_str(pk, "result");
    farm_pack_raw(pk, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
    farm_pack_str(pk, "error");
    s_pack_col_str(pk, st, 1);
    sqlite3_reset(st);
    return 0;
}

int farm_store_pack_list(farm_store_t *s, int64_t job, int state, farm_str_t type, int64_t after, int64_t limit,
                         farm_why_fn *why, void *ud, msgpack_packer *pk) {
    int which = job > 0 ? ST_LIST_JOB : state >= FARM_TASK_FAILED ? ST_LIST_BAD : ST_LIST_ALL;
    sqlite3_stmt *st = s_st(s, which);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int(st, 3, state);
    s_bind_str(st, 4, type);
    sqlite3_bind_int64(st, 5, limit + 1);
    /* Count first so the array header is exact, then pack. */
    int64_t n = 0, last = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        n++;
    if (rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return s_fail(s, "list");
    }
    sqlite3_reset(st);
    bool more = n > limit;
    if (more)
        n = limit;
    msgpack_pack_map(pk, 3);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_str(pk, "tasks");
    msgpack_pack_array(pk, (size_t)n);
    for (int64_t i = 0; i < n && sqlite3_step(st) == SQLITE_ROW; i++) {
        last = sqlite3_column_int64(st, 0);
        s_pack_taskview(s, st, false, why, ud, pk);
    }
    sqlite3_reset(st);
    if (more)
        farm_pack_kv_int(pk, "next", last);
    else
        farm_pack_kv_nil(pk, "next");
    return 0;
}

int farm_store_pack_jobs(farm_store_t *s, int state, int64_t after, int64_t limit, msgpack_packer *pk) {
    sqlite3_stmt *st = s_st(s, ST_JOBS_LIST);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, state);
    sqlite3_bind_int64(st, 3, limit + 1);
    int64_t n = 0, last = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        n++;
    if (rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return s_fail(s, "jobs");
    }
    sqlite3_reset(st);
    bool more = n > limit;
    if (more)
        n = limit;
    msgpack_pack_map(pk, 3);
    farm_pack_kv_bool(pk, "ok", true);
    farm_pack_str(pk, "jobs");
    msgpack_pack_array(pk, (size_t)n);
    for (int64_t i = 0; i < n && sqlite3_step(st) == SQLITE_ROW; i++) {
        last = sqlite3_column_int64(st, 0);
        s_pack_jobview(st, pk);
    }
    sqlite3_reset(st);
    if (more)
        farm_pack_kv_int(pk, "next", last);
    else
        farm_pack_kv_nil(pk, "next");
    return 0;
}

int farm_store_counts(farm_store_t *s, int64_t counts[6], int64_t *jobs) {
    sqlite3_stmt *st = s_st(s, ST_TOTALS);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(s, "totals");
    }
    for (int i = 0; i < 6; i++)
        counts[i] = sqlite3_column_int64(st, i);
    if (jobs)
        *jobs = sqlite3_column_int64(st, 6);
    sqlite3_reset(st);
    return 0;
}

int farm_store_job_exists(farm_store_t *s, int64_t job) {
    sqlite3_stmt *st = s_st(s, ST_JOB_EXISTS);
    sqlite3_bind_int64(st, 1, job);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "job_exists");
}

/* ---- task state --------------------------------------------------------- */

typedef struct {
    int state;
    char worker[256];
    int64_t attempts, max_attempts;
    bool cancel_req;
    int64_t job, created_ms;
    int progress;
    int64_t base;             /* attempts before the last retry: the budget counts from here */
} s_task_t;

static int s_task_get(farm_store_t *s, int64_t id, s_task_t *t) {
    sqlite3_stmt *st = s_st(s, ST_TASK_STATE);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "task_state");
    }
    t->state = sqlite3_column_int(st, 0);
    const char *w = (const char *)sqlite3_column_text(st, 1);
    snprintf(t->worker, sizeof t->worker, "%s", w ? w : "");
    t->attempts = sqlite3_column_int64(st, 2);
    t->max_attempts = sqlite3_column_int64(st, 3);
    t->cancel_req = sqlite3_column_int(st, 4) != 0;
    t->job = sqlite3_column_int64(st, 5);
    t->created_ms = sqlite3_column_int64(st, 6);
    t->progress = sqlite3_column_int(st, 7);
    t->base = sqlite3_column_int64(st, 8);
    sqlite3_reset(st);
    return 0;
}

static int s_set_cancelled(farm_store_t *s, int64_t id, const s_task_t *t, int64_t now) {
    sqlite3_stmt *st = s_st(s, ST_SET_CANCELLED);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    int rc = s_exec(s, st, "set_cancelled");
    if (!rc)
        s_change(s, id, t->job, FARM_TASK_CANCELLED, t->progress, t->attempts, NULL, now);
    return rc;
}

/* Cancel one task inside a transaction. *n counts it when it changes. */
static int s_cancel_one(farm_store_t *s, int64_t id, int64_t now, farm_stop_fn *stop, void *ud, int64_t *n,
                        bool single) {
    s_task_t t;
    int rc = s_task_get(s, id, &t);
    if (rc)
        return rc;
    if (farm_state_final(t.state))
        return single ? FARM_ECONFLICT : 0;
    if (t.state == FARM_TASK_RETRYING || (t.state == FARM_TASK_PENDING && !t.worker[0])) {
        rc = s_set_cancelled(s, id, &t, now);
    } else {
        /* Held by a worker: it stops the task and its report ends it. */
        sqlite3_stmt *st = s_st(s, ST_SET_CANCEL_REQ);
        sqlite3_bind_int64(st, 1, id);
        rc = s_exec(s, st, "set_cancel_req");
        if (!rc && stop)
            stop(ud, id, t.worker);
    }
    if (!rc)
        (*n)++;
    return rc;
}

/* Collect the ids a statement returns for job (bounded by the job's size). */
static int s_job_ids(farm_store_t *s, int which, int64_t job, int64_t **ids, size_t *n) {
    size_t cap = 64;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids)
        return -ENOMEM;
    sqlite3_stmt *st = s_st(s, which);
    sqlite3_bind_int64(st, 1, job);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            int64_t *p = realloc(*ids, cap * 2 * sizeof **ids);
            if (!p) {
                sqlite3_reset(st);
                return -ENOMEM;
            }
            *ids = p;
            cap *= 2;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(s, "job_ids");
}

int farm_store_cancel(farm_store_t *s, int64_t task, int64_t job, int64_t now, farm_stop_fn *stop, void *ud,
                      int64_t *n) {
    *n = 0;
    int rc = farm_store_begin(s);
    if (rc)
        return rc;
    if (task) {
        rc = s_cancel_one(s, task, now, stop, ud, n, true);
    } else if (!(rc = farm_store_job_exists(s, job))) {
        int64_t *ids = NULL;
        size_t k = 0;
        rc = s_job_ids(s, ST_JOB_TASKS_OPEN, job, &ids, &k);
        for (size_t i = 0; !rc && i < k; i++)
            rc = s_cancel_one(s, ids[i], now, stop, ud, n, false);
        free(ids);
    }
    if (rc) {
        farm_store_rollback(s);
        *n = 0;
        return rc;
    }
    return farm_store_commit(s);
}

static int s_retry_one(farm_store_t *s, int64_t id, int64_t now, int64_t *n, bool single) {
    s_task_t t;
    int rc = s_task_get(s, id, &t);
    if (rc)
        return rc;
    if (t.state != FARM_TASK_FAILED && t.state != FARM_TASK_CANCELLED)
        return single ? FARM_ECONFLICT : 0;
    sqlite3_stmt *st = s_st(s, ST_SET_RETRY);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = s_exec(s, st, "set_retry")))
        return rc;
    s_change(s, id, t.job, FARM_TASK_PENDING, 0, 0, NULL, now);
    (*n)++;
    return 0;
}

int farm_store_retry(farm_store_t *s, int64_t task, int64_t job, int64_t now, int64_t *n) {
    *n = 0;
    int rc = farm_store_begin(s);
    if (rc)
        return rc;
    if (task) {
        rc = s_retry_one(s, task, now, n, true);
    } else if (!(rc = farm_store_job_exists(s, job))) {
        int64_t *ids = NULL;
        size_t k = 0;
        rc = s_job_ids(s, ST_JOB_TASKS_DEAD, job, &ids, &k);
        for (size_t i = 0; !rc && i < k; i++)
            rc = s_retry_one(s, ids[i], now, n, false);
        free(ids);
    }
    if (rc) {
        farm_store_rollback(s);
        *n = 0;
        return rc;
    }
    return farm_store_commit(s);
}

int farm_store_delete_job(farm_store_t *s, int64_t job, int64_t *n) {
    *n = 0;
    int rc = farm_store_begin(s);
    if (rc)
        return rc;
    sqlite3_stmt *st = s_st(s, ST_JOB_OPEN_COUNT);
    sqlite3_bind_int64(st, 1, job);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        sqlite3_reset(st);
        farm_store_rollback(s);
        return step == SQLITE_DONE ? FARM_ENOTFOUND : s_fail(s, "job_open_count");
    }
    int64_t open = sqlite3_column_int64(st, 0), c[6];
    for (int i = 0; i < 6; i++)
        c[i] = sqlite3_column_int64(st, 1 + i);
    sqlite3_reset(st);
    if (open > 0) {
        farm_store_rollback(s);
        return FARM_ECONFLICT;
    }
    static const int dels[] = {ST_DEL_BAD, ST_DEL_RECORDS, ST_DEL_RESULTS, ST_DEL_ATTEMPTS, ST_DEL_TASKS, ST_DEL_JOB};
    for (size_t i = 0; i < sizeof dels / sizeof dels[0] && !rc; i++) {
        st = s_st(s, dels[i]);
        sqlite3_bind_int64(st, 1, job);
        rc = s_exec(s, st, "delete_job");
        if (!rc && dels[i] == ST_DEL_TASKS)
            *n = sqlite3_changes(s->db);
    }
    if (!rc) {
        st = s_st(s, ST_TOTALS_SUB);
        for (int i = 0; i < 6; i++)
            sqlite3_bind_int64(st, i + 1, c[i]);
        rc = s_exec(s, st, "totals_sub");
    }
    if (rc) {
        farm_store_rollback(s);
        *n = 0;
        return rc;
    }
    return farm_store_commit(s);
}

/* ---- dispatch ----------------------------------------------------------- */

int farm_store_ready(farm_store_t *s, const char *type, int64_t now, int64_t limit, farm_ready_fn *fn, void *ud) {
    sqlite3_stmt *st = s_st(s, ST_READY);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        farm_ready_t t = {
            .id = sqlite3_column_int64(st, 0),
            .job = sqlite3_column_int64(st, 1),
            .priority = sqlite3_column_int64(st, 2),
            .timeout_ms = sqlite3_column_int64(st, 3),
            .type = (const char *)sqlite3_column_text(st, 4),
            .args = sqlite3_column_blob(st, 5),
            .args_len = (size_t)sqlite3_column_bytes(st, 5),
        };
        if (fn(ud, &t))
            break;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : s_fail(s, "ready");
}

int farm_store_claim_many(farm_store_t *s, const int64_t *tasks, size_t n, const char *worker,
                          farm_claimed_fn *fn, void *ud) {
    if (n == 0)
        return 0;
    /* The ids as a JSON array, the one list SQLite takes as a parameter. */
    size_t cap = n * 21 + 3, len = 0;
    char *json = malloc(cap);
    if (!json)
        return FARM_EINTERNAL;
    json[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s%" PRId64, i ? "," : "", tasks[i]);
    json[len++] = ']';
    sqlite3_stmt *st = s_st(s, ST_CLAIM_MANY);
    sqlite3_bind_text(st, 1, json, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, worker, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_reset(st);
    free(json);
    return rc == SQLITE_DONE ? 0 : s_fail(s, "claim_many");
}

/* farm_store_claim is farm_store_claim_many of one task. */
typedef struct {
    bool got;
    int64_t attempt;
} s_claim_one_t;

static void s_claim_one(void *ud, int64_t task, int64_t attempt) {
    (void)task;
    s_claim_one_t *c = ud;
    c->got = true;
    c->attempt = attempt;
}

int farm_store_claim(farm_store_t *s, int64_t task, const char *worker, int64_t *attempt) {
    s_claim_one_t c = {false, 0};
    int rc = farm_store_claim_many(s, &task, 1, worker, s_claim_one, &c);
    if (rc)
        return rc;
    if (!c.got)
        return FARM_ECONFLICT;
    *attempt = c.attempt;
    return 0;
}

int farm_store_promote_due(farm_store_t *s, int64_t now, int64_t *n) {
    *n = 0;
    int64_t ids[1000];
    size_t k = 0;
    sqlite3_stmt *st = s_st(s, ST_DUE);
    sqlite3_bind_int64(st, 1, now);
    int rc;
    while (k < 1000 && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ids[k++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (!k)
        return 0;
    if ((rc = farm_store_begin(s)))
        return rc;
    for (size_t i = 0; i < k && !rc; i++) {
        s_task_t t;
        if (s_task_get(s, ids[i], &t) || t.state != FARM_TASK_RETRYING)
            continue;
        st = s_st(s, ST_SET_PENDING);
        sqlite3_bind_int64(st, 1, ids[i]);
        if (!(rc = s_exec(s, st, "set_pending"))) {
            s_change(s, ids[i], t.job, FARM_TASK_PENDING, 0, t.attempts, NULL, now);
            (*n)++;
        }
    }
    if (rc) {
        farm_store_rollback(s);
        *n = 0;
        return rc;
    }
    return farm_store_commit(s);
}

static int64_t s_min(farm_store_t *s, int which, int64_t now) {
    sqlite3_stmt *st = s_st(s, which);
    if (which == ST_NEXT_DELAYED)
        sqlite3_bind_int64(st, 1, now);
    int64_t v = INT64_MAX;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

int64_t farm_store_next_due(farm_store_t *s, int64_t now) {
    int64_t a = s_min(s, ST_NEXT_RETRY, now), b = s_min(s, ST_NEXT_DELAYED, now);
    return a < b ? a : b;
}

int64_t farm_store_pending(farm_store_t *s) {
    sqlite3_stmt *st = s_st(s, ST_PENDING);
    int64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

int farm_store_worker_tasks(farm_store_t *s, const char *worker, farm_held_fn *fn, void *ud) {
    sqlite3_stmt *st = s_st(s, ST_WORKER_TASKS);
    sqlite3_bind_text(st, 1, worker, -1, SQLITE_TRANSIENT);
    int rc;
    /* Collect first: the callback may change the rows being read. */
    int64_t ids[4096];
    int states[4096];
    size_t k = 0;
    while (k < 4096 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ids[k] = sqlite3_column_int64(st, 0);
        states[k++] = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < k; i++)
        fn(ud, ids[i], states[i]);
    return 0;
}

/* A failed attempt of task t (current attempt), inside a transaction. */
static int s_attempt_failed(farm_store_t *s, int64_t id, const s_task_t *t, const char *error, bool cancelled,
                            int64_t started_ms, int64_t now) {
    sqlite3_stmt *st;
    int rc;
    if (cancelled || t->cancel_req) {
        rc = s_set_cancelled(s, id, t, now);
    } else if (t->attempts - t->base >= t->max_attempts) {
        st = s_st(s, ST_SET_FAILED);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, FARM_TASK_FAILED);
        sqlite3_bind_int64(st, 3, now);
        s_bind_cstr(st, 4, error);
        if (started_ms)
            sqlite3_bind_int64(st, 5, started_ms);
        else
            sqlite3_bind_null(st, 5);
        if (!(rc = s_exec(s, st, "set_failed")))
            s_change(s, id, t->job, FARM_TASK_FAILED, t->progress, t->attempts, NULL, now);
    } else {
        st = s_st(s, ST_SET_RETRYING);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now + s_backoff(s, t->attempts));
        s_bind_cstr(st, 3, error);
        if (!(rc = s_exec(s, st, "set_retrying")))
            s_change(s, id, t->job, FARM_TASK_RETRYING, 0, t->attempts, NULL, now);
    }
    return rc;
}

static int s_attempt_end(farm_store_t *s, int64_t id, int64_t attempt, const char *worker, int64_t started_ms,
                         int64_t finished_ms, const char *error) {
    sqlite3_stmt *st = s_st(s, ST_ATTEMPT_END);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, attempt);
    s_bind_cstr(st, 3, worker);
    if (started_ms)
        sqlite3_bind_int64(st, 4, started_ms);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, finished_ms);
    s_bind_cstr(st, 6, error);
    return s_exec(s, st, "attempt_end");
}

int farm_store_release(farm_store_t *s, int64_t task, const char *worker, const char *reason, bool maybe_started,
                       int64_t now) {
    s_task_t t;
    int rc = s_task_get(s, task, &t);
    if (rc == FARM_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (strcmp(t.worker, worker) != 0 || farm_state_final(t.state))
        return 0; /* moved on meanwhile */
    if (t.state == FARM_TASK_PENDING && (!maybe_started || t.cancel_req)) {
        /* Dispatched, never started: the attempt did not happen. */
        sqlite3_stmt *st = s_st(s, t.cancel_req ? ST_SET_CANCELLED : ST_UNLEASE);
        sqlite3_bind_int64(st, 1, task);
        if (t.cancel_req)
            sqlite3_bind_int64(st, 2, now);
        if ((rc = s_exec(s, st, "unlease")))
            return rc;
        s_change(s, task, t.job, t.cancel_req ? FARM_TASK_CANCELLED : FARM_TASK_PENDING, t.progress,
                 t.attempts - 1, NULL, now);
        return 0;
    }
    if ((rc = s_attempt_end(s, task, t.attempts, worker, 0, now, reason)))
        return rc;
    return s_attempt_failed(s, task, &t, reason, false, 0, now);
}

typedef struct {
    farm_store_t *s;
    const char *worker, *reason;
    int64_t now, n;
    int rc;
} s_release_ctx_t;

static void s_release_cb(void *ud, int64_t task, int state) {
    s_release_ctx_t *c = ud;
    if (!c->rc && !(c->rc = farm_store_release(c->s, task, c->worker, c->reason, true, c->now)))
        c->n++;
}

int farm_store_lease_holders(farm_store_t *s, void (*fn)(void *ud, const char *worker), void *ud) {
    sqlite3_stmt *st = s_st(s, ST_LEASE_HOLDERS);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *w = (const char *)sqlite3_column_text(st, 0);
        if (w)
            fn(ud, w);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(s, "lease_holders");
}

int farm_store_release_worker(farm_store_t *s, const char *worker, const char *reason, int64_t now, int64_t *n) {
    *n = 0;
    int rc = farm_store_begin(s);
    if (rc)
        return rc;
    s_release_ctx_t c = {s, worker, reason, now, 0, 0};
    farm_store_worker_tasks(s, worker, s_release_cb, &c);
    if (c.rc) {
        farm_store_rollback(s);
        return c.rc;
    }
    *n = c.n;
    return farm_store_commit(s);
}

/* ---- reports ------------------------------------------------------------ */

int farm_store_started(farm_store_t *s, int64_t task, int64_t attempt, const char *worker, int64_t ms) {
    sqlite3_stmt *st = s_st(s, ST_STARTED);
    sqlite3_bind_int64(st, 1, task);
    sqlite3_bind_int64(st, 2, attempt);
    s_bind_cstr(st, 3, worker);
    sqlite3_bind_int64(st, 4, ms);
    int rc = s_exec(s, st, "started");
    if (rc)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return 0; /* stale: another attempt, or the task moved on */
    st = s_st(s, ST_ATTEMPT_START);
    sqlite3_bind_int64(st, 1, task);
    sqlite3_bind_int64(st, 2, attempt);
    s_bind_cstr(st, 3, worker);
    sqlite3_bind_int64(st, 4, ms);
    if ((rc = s_exec(s, st, "attempt_start")))
        return rc;
    s_task_t t;
    if (!s_task_get(s, task, &t))
        s_change(s, task, t.job, FARM_TASK_RUNNING, 0, attempt, worker, ms);
    return 0;
}

int farm_store_progress(farm_store_t *s, int64_t task, int64_t attempt, int pct, farm_str_t msg, int64_t ms) {
    sqlite3_stmt *st = s_st(s, ST_PROGRESS);
    sqlite3_bind_int64(st, 1, task);
    sqlite3_bind_int64(st, 2, attempt);
    sqlite3_bind_int(st, 3, pct);
    s_bind_str(st, 4, msg);
    int rc = s_exec(s, st, "progress");
    if (rc || sqlite3_changes(s->db) == 0)
        return rc;
    s_task_t t;
    if (!s_task_get(s, task, &t))
        s_change(s, task, t.job, FARM_TASK_RUNNING, pct, attempt, t.worker[0] ? t.worker : NULL, ms);
    return 0;
}

static int s_result_put(farm_store_t *s, const farm_result_in_t *r, int64_t now) {
    sqlite3_stmt *st = s_st(s, ST_RESULT_PUT);
    sqlite3_bind_int64(st, 1, r->task);
    sqlite3_bind_int64(st, 2, r->attempt);
    sqlite3_bind_int(st, 3, r->ok ? 1 : 0);
    if (r->result)
        sqlite3_bind_blob(st, 4, r->result, (int)r->result_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, now);
    return s_exec(s, st, "result_put");
}

int farm_store_result(farm_store_t *s, const farm_result_in_t *r, int64_t now, farm_result_outcome_t *outcome,
                      int64_t *created_ms) {
    *outcome = FARM_RESULT_STALE;
    if (created_ms)
        *created_ms = 0;
    s_task_t t;
    int rc = s_task_get(s, r->task, &t);
    if (rc == FARM_ENOTFOUND)
        return 0; /* deleted meanwhile */
    if (rc)
        return rc;
    /* First result wins: a task that completed keeps its result, and so
     * does a cancelled one that got a successful result after the cancel
     * (only a cancelled task can hold one without being completed: after a
     * retry, the new attempt's result is the one that counts). */
    sqlite3_stmt *st;
    bool have_ok = false;
    if (t.state == FARM_TASK_CANCELLED) {
        st = s_st(s, ST_RESULT_GET);
        sqlite3_bind_int64(st, 1, r->task);
        int step = sqlite3_step(st);
        have_ok = step == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
        sqlite3_reset(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return s_fail(s, "result_get");
    }
    if (have_ok || t.state == FARM_TASK_COMPLETED) {
        st = s_st(s, ST_RESULT_DUP);
        sqlite3_bind_int64(st, 1, r->task);
        *outcome = FARM_RESULT_DUPLICATE;
        return s_exec(s, st, "result_dup");
    }
    int64_t fin = r->finished_ms ? r->finished_ms : now;
    if ((rc = s_attempt_end(s, r->task, r->attempt, r->worker, r->started_ms, fin, r->ok ? NULL : r->error)))
        return rc;
    if (r->ok) {
        if ((rc = s_result_put(s, r, now)))
            return rc;
        if (t.state == FARM_TASK_CANCELLED)
            return 0; /* cancelled stays cancelled; the output is kept */
        st = s_st(s, ST_SET_COMPLETED);
        sqlite3_bind_int64(st, 1, r->task);
        sqlite3_bind_int64(st, 2, fin);
        s_bind_cstr(st, 3, r->worker);
        sqlite3_bind_int64(st, 4, r->attempt);
        if (r->started_ms)
            sqlite3_bind_int64(st, 5, r->started_ms);
        else
            sqlite3_bind_null(st, 5);
        if ((rc = s_exec(s, st, "set_completed")))
            return rc;
        s_change(s, r->task, t.job, FARM_TASK_COMPLETED, 100, r->attempt, r->worker, fin);
        *outcome = FARM_RESULT_STORED;
        if (created_ms)
            *created_ms = t.created_ms;
        return 0;
    }
    /* A failed attempt. Only the current attempt of a live task moves it. */
    if (farm_state_final(t.state) || r->attempt != t.attempts || t.state == FARM_TASK_RETRYING)
        return 0; /* stale: recorded in the attempt history only */
    if ((rc = s_result_put(s, r, now)))
        return rc;
    if ((rc = s_attempt_failed(s, r->task, &t, r->error ? r->error : "failed", r->cancelled, r->started_ms, fin)))
        return rc;
    *outcome = FARM_RESULT_STORED;
    /* A dead letter is final too: it counts in the latency to a final state. */
    if (created_ms && t.attempts - t.base >= t.max_attempts)
        *created_ms = t.created_ms;
    return 0;
}

/* ---- records -------------------------------------------------------- */

int farm_store_records_put(farm_store_t *s, int64_t task, int64_t idx, const void *data, size_t len) {
    if (task <= 0 || idx < 0 || !data || len == 0 || len > INT_MAX)
        return FARM_EBADREQ;
    sqlite3_stmt *st = s_st(s, ST_RECORD_PUT);
    sqlite3_bind_int64(st, 1, task);
    sqlite3_bind_int64(st, 2, idx);
    sqlite3_bind_blob(st, 3, data, (int)len, SQLITE_STATIC);
    return s_exec(s, st, "record_put");
}

int farm_store_records_each(farm_store_t *s, int64_t task, farm_record_fn *fn, void *ud) {
    sqlite3_stmt *st = s_st(s, ST_RECORDS_GET);
    sqlite3_bind_int64(st, 1, task);
    int rc = SQLITE_DONE, stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *d = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        stop = fn(ud, sqlite3_column_int64(st, 0), d ? d : "", (size_t)(n > 0 ? n : 0));
    }
    sqlite3_reset(st);
    return stop || rc == SQLITE_DONE ? 0 : s_fail(s, "records_get");
}

/* ---- performance -------------------------------------------------------- */

int farm_store_perf_add(farm_store_t *s, int64_t sec, int64_t completed, const uint32_t hist[FARM_HIST_N]) {
    uint32_t h[FARM_HIST_N];
    memcpy(h, hist, sizeof h);
    sqlite3_stmt *st = s_st(s, ST_PERF_GET);
    sqlite3_bind_int64(st, 1, sec);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof h) {
        const uint32_t *old = sqlite3_column_blob(st, 0);
        for (int i = 0; i < FARM_HIST_N; i++)
            h[i] += old[i];
    }
    sqlite3_reset(st);
    st = s_st(s, ST_PERF_ADD);
    sqlite3_bind_int64(st, 1, sec);
    sqlite3_bind_int64(st, 2, completed);
    sqlite3_bind_blob(st, 3, h, sizeof h, SQLITE_TRANSIENT);
    int rc = s_exec(s, st, "perf_add");
    if (rc)
        return rc;
    st = s_st(s, ST_PERF_PRUNE);
    sqlite3_bind_int64(st, 1, sec);
    return s_exec(s, st, "perf_prune");
}

int farm_store_perf_read(farm_store_t *s, int64_t now_sec, int64_t *c10, int64_t *c60, uint32_t hist[FARM_HIST_N]) {
    *c10 = *c60 = 0;
    memset(hist, 0, sizeof(uint32_t) * FARM_HIST_N);
    sqlite3_stmt *st = s_st(s, ST_PERF_READ);
    sqlite3_bind_int64(st, 1, now_sec);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t sec = sqlite3_column_int64(st, 0), c = sqlite3_column_int64(st, 1);
        *c60 += c;
        if (sec > now_sec - 10)
            *c10 += c;
        if (sqlite3_column_bytes(st, 2) == (int)(sizeof(uint32_t) * FARM_HIST_N)) {
            const uint32_t *h = sqlite3_column_blob(st, 2);
            for (int i = 0; i < FARM_HIST_N; i++)
                hist[i] += h[i];
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(s, "perf_read");
}

int farm_store_check(farm_store_t *s) {
    sqlite3_stmt *st = s_st(s, ST_CHECK);
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_reset(st);
    return ok ? 0 : FARM_ESTORE;
}
