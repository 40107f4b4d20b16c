/* test_vfs: the store's VFS shim (proto/farm_vfs.c) on real SQLite files.
 *
 * Under the shim sits a spy: a VFS over the system's that counts the
 * writes reaching each WAL and can be told to fail them. It is made the
 * default before the shim registers, so the shim stands on it. Checked: a
 * commit reaches the WAL in one write; another connection sees every
 * commit as soon as it returns; large and rolled-back transactions;
 * commits survive a process that dies without closing; a failing write is
 * an error of the commit, and the database stays whole after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "farm_vfs.h"

/* ---- the spy ----------------------------------------------------------------- */

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;
    int is_wal;
} spy_file_t;

#define SPY_HDR ((sizeof(spy_file_t) + 15) & ~(size_t)15)

static sqlite3_vfs spy_vfs, *spy_root;
static sqlite3_io_methods spy_io;
static int64_t spy_writes, spy_bytes; /* to WAL files */
static int spy_fail;                   /* WAL writes fail while set */

static int spy_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 off) {
    spy_file_t *f = (spy_file_t *)p;
    if (f->is_wal) {
        if (spy_fail)
            return SQLITE_IOERR_WRITE;
        spy_writes++;
        spy_bytes += n;
    }
    return f->real->pMethods->xWrite(f->real, b, n, off);
}

/* Every other method passes through to the real file. */
#define SPY_PASS(name, ret, params, args)                      \
    static ret spy_##name params {                             \
        spy_file_t *f = (spy_file_t *)p;                       \
        return f->real->pMethods->name args;                   \
    }
SPY_PASS(xClose, int, (sqlite3_file * p), (f->real))
SPY_PASS(xRead, int, (sqlite3_file * p, void *b, int n, sqlite3_int64 o), (f->real, b, n, o))
SPY_PASS(xTruncate, int, (sqlite3_file * p, sqlite3_int64 s), (f->real, s))
SPY_PASS(xSync, int, (sqlite3_file * p, int fl), (f->real, fl))
SPY_PASS(xFileSize, int, (sqlite3_file * p, sqlite3_int64 *s), (f->real, s))
SPY_PASS(xLock, int, (sqlite3_file * p, int l), (f->real, l))
SPY_PASS(xUnlock, int, (sqlite3_file * p, int l), (f->real, l))
SPY_PASS(xCheckReservedLock, int, (sqlite3_file * p, int *r), (f->real, r))
SPY_PASS(xFileControl, int, (sqlite3_file * p, int op, void *a), (f->real, op, a))
SPY_PASS(xSectorSize, int, (sqlite3_file * p), (f->real))
SPY_PASS(xDeviceCharacteristics, int, (sqlite3_file * p), (f->real))
SPY_PASS(xShmMap, int, (sqlite3_file * p, int pg, int sz, int ext, void volatile **o), (f->real, pg, sz, ext, o))
SPY_PASS(xShmLock, int, (sqlite3_file * p, int off, int n, int fl), (f->real, off, n, fl))
SPY_PASS(xShmUnmap, int, (sqlite3_file * p, int del), (f->real, del))
SPY_PASS(xFetch, int, (sqlite3_file * p, sqlite3_int64 o, int n, void **pp), (f->real, o, n, pp))
SPY_PASS(xUnfetch, int, (sqlite3_file * p, sqlite3_int64 o, void *pg), (f->real, o, pg))
static void spy_xShmBarrier(sqlite3_file *p) {
    spy_file_t *f = (spy_file_t *)p;
    f->real->pMethods->xShmBarrier(f->real);
}

static int spy_open(sqlite3_vfs *v, const char *name, sqlite3_file *p, int flags, int *out) {
    (void)v;
    spy_file_t *f = (spy_file_t *)p;
    f->real = (sqlite3_file *)((char *)f + SPY_HDR);
    f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = spy_root->xOpen(spy_root, name, f->real, flags, out);
    p->pMethods = f->real->pMethods ? &spy_io : NULL;
    return rc;
}

static void spy_install(void) {
    spy_root = sqlite3_vfs_find(NULL);
    assert_non_null(spy_root);
    /* The system's VFS-level functions do not look at the VFS they are
     * given, but for xOpen, which is wrapped. */
    spy_vfs = *spy_root;
    spy_vfs.pNext = NULL;
    spy_vfs.zName = "spy";
    spy_vfs.szOsFile = (int)(SPY_HDR + (size_t)spy_root->szOsFile);
    spy_vfs.xOpen = spy_open;
    spy_io = (sqlite3_io_methods){3, spy_xClose, spy_xRead, spy_write, spy_xTruncate, spy_xSync, spy_xFileSize,
                                  spy_xLock, spy_xUnlock, spy_xCheckReservedLock, spy_xFileControl,
                                  spy_xSectorSize, spy_xDeviceCharacteristics, spy_xShmMap, spy_xShmLock,
                                  spy_xShmBarrier, spy_xShmUnmap, spy_xFetch, spy_xUnfetch};
    assert_int_equal(sqlite3_vfs_register(&spy_vfs, 1), SQLITE_OK);
    assert_int_equal(farm_vfs_register(), SQLITE_OK); /* stands on the spy, now the default */
}

/* ---- helpers ------------------------------------------------------------------ */

static char s_dir[] = "/tmp/farm-test-vfs-XXXXXX";
static char s_path[256];

static sqlite3 *db_open(const char *vfs) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(s_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static int64_t one_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void integrity_ok(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

/* Insert n rows of blob bytes each in one transaction; commit or roll back. */
static int put_rows(sqlite3 *db, int n, int blob, int commit) {
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES (abs(random()) % 1000000, zeroblob(?1))", -1,
                                        &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(sqlite3_bind_int(st, 1, blob), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        assert_int_equal(sqlite3_reset(st), SQLITE_OK);
    }
    sqlite3_finalize(st);
    int rc = sqlite3_exec(db, commit ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int setup(void **state) {
    (void)state;
    strcpy(s_dir, "/tmp/farm-test-vfs-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_path, sizeof s_path, "%s/t.db", s_dir);
    sqlite3 *db = db_open(FARM_VFS_NAME);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);"
                                  "CREATE INDEX t_k ON t(k); CREATE INDEX t_kv ON t(k, id);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---------------------------------------------------------------------- */

/* The point of the shim: a commit of several pages is one write, where
 * SQLite alone makes two per page. */
static void test_one_write_per_commit(void **state) {
    (void)state;
    sqlite3 *plain = db_open("spy"), *shim = db_open(FARM_VFS_NAME);
    put_rows(plain, 200, 100, 1); /* a table and two indexes of several pages each */
    spy_writes = spy_bytes = 0;
    assert_int_equal(put_rows(plain, 1, 100, 1), SQLITE_OK);
    int64_t plain_writes = spy_writes, plain_bytes = spy_bytes;
    assert_true(plain_writes >= 6); /* 3 pages or more, header and page apart */
    spy_writes = spy_bytes = 0;
    assert_int_equal(put_rows(shim, 1, 100, 1), SQLITE_OK);
    assert_int_equal(spy_writes, 1);
    assert_int_equal(spy_bytes, plain_bytes); /* the same frames */
    spy_writes = 0;
    assert_int_equal(put_rows(shim, 300, 100, 1), SQLITE_OK);
    assert_int_equal(spy_writes, 1);
    assert_int_equal(one_int(plain, "SELECT count(*) FROM t"), 502);
    sqlite3_close(plain);
    sqlite3_close(shim);
}

/* Another connection (of the system's VFS) sees each commit the moment it
 * returns: small ones, ones beyond what the shim gathers (256 KiB), and none
 * of a rolled-back one; with synchronous NORMAL and FULL (--sync-full: a
 * sync of the WAL at every commit). */
static void visible_at_once(int full) {
    sqlite3 *w = db_open(FARM_VFS_NAME), *r = db_open("spy");
    assert_int_equal(sqlite3_exec(w, "PRAGMA cache_size=-512", NULL, NULL, NULL), SQLITE_OK); /* spills mid-transaction */
    if (full)
        assert_int_equal(sqlite3_exec(w, "PRAGMA synchronous=FULL", NULL, NULL, NULL), SQLITE_OK);
    int64_t want = one_int(r, "SELECT count(*) FROM t");
    srand(7);
    for (int i = 0; i < 300; i++) {
        int n = 1 + rand() % 50, blob = 16 + rand() % 2000, commit = i % 7 != 3;
        if (i % 60 == 59)
            n = 3000, blob = 2000; /* ~6 MB */
        assert_int_equal(put_rows(w, n, blob, commit), SQLITE_OK);
        if (commit)
            want += n;
        assert_int_equal(one_int(r, "SELECT count(*) FROM t"), want);
    }
    integrity_ok(r);
    sqlite3_close(w);
    integrity_ok(r);
    sqlite3_close(r);
}

static void test_commits_visible_at_once(void **state) {
    (void)state;
    for (int full = 0; full < 2; full++)
        visible_at_once(full);
}

/* A process that dies without closing keeps every commit it returned, and
 * one that dies inside a transaction leaves nothing of it. */
static void test_crash_keeps_commits(void **state) {
    (void)state;
    for (int mid = 0; mid < 2; mid++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            sqlite3 *db = db_open(FARM_VFS_NAME);
            sqlite3_exec(db, "PRAGMA cache_size=-256", NULL, NULL, NULL);
            for (int i = 0; i < 100; i++)
                if (put_rows(db, 3, 500, 1) != SQLITE_OK)
                    _exit(2);
            if (mid) { /* a transaction bigger than the page cache, never committed */
                sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
                sqlite3_exec(db,
                             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
                             " INSERT INTO t(k, v) SELECT i, zeroblob(3000) FROM n",
                             NULL, NULL, NULL);
            }
            kill(getpid(), SIGKILL);
            _exit(3);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        sqlite3 *db = db_open("spy");
        assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 300 * (mid + 1));
        integrity_ok(db);
        sqlite3_close(db);
    }
}

/* A write the file system refuses is the commit's error; nothing of that
 * transaction shows, and the next commit works. */
static void test_failed_write_is_an_error(void **state) {
    (void)state;
    sqlite3 *w = db_open(FARM_VFS_NAME), *r = db_open("spy");
    assert_int_equal(put_rows(w, 10, 100, 1), SQLITE_OK);
    spy_fail = 1;
    int rc = put_rows(w, 10, 100, 1);
    spy_fail = 0;
    assert_int_not_equal(rc, SQLITE_OK);
    assert_int_equal(rc & 0xff, SQLITE_IOERR);
    assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 10);
    assert_int_equal(put_rows(w, 5, 100, 1), SQLITE_OK);
    assert_int_equal(one_int(r, "SELECT count(*) FROM t"), 15);
    integrity_ok(r);
    sqlite3_close(w);
    sqlite3_close(r);
}

int main(void) {
    spy_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_write_per_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commits_visible_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_keeps_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
