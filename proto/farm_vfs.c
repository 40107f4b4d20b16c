/* farm_vfs: the system's SQLite VFS, with a commit's WAL frames written
 * by one system call instead of two per page.
 *
 * SQLite appends a commit to the write-ahead log as a 24-byte frame header
 * and then the page, one write(2) each, per page: a one-task submit
 * touches 7 pages, so 14 system calls, most of its commit on a small VM
 * where a system call costs a microsecond or more. This shim gathers a WAL
 * file's consecutive writes in memory and writes them out together, at the
 * latest inside the write that completes a commit's last frame (the frame
 * whose header carries the database size), so a failure is returned to
 * SQLite from that write, as it would have been without the shim.
 *
 * Why that is safe: a commit becomes visible to other connections only
 * when SQLite publishes the new wal-index header, which it does after the
 * last frame's write has returned; by then every frame is in the file.
 * Anything else that touches the WAL (a read, its size, truncate, sync,
 * close, a lock, a file control, or a barrier or lock of the database's
 * shared memory) first writes out what is gathered. A process that dies
 * with frames still gathered loses a commit nobody could yet see: the same
 * as dying a moment before writing them. Every file other than a WAL goes
 * straight through.
 */
#include "farm_vfs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Gathered bytes before they are written anyway. A commit of a few pages
 * (the point) fits many times over; a large one goes out 256 KiB at a time
 * (64 frames a write instead of 2 a page), and the buffer, kept for the
 * connection's life, stays small (at 4 MiB the sink's resident memory grew
 * by 1-2 MB during a long run, as ever larger commits came). */
#define S_BUF_MAX (256 << 10)
#define S_WRITE_MAX 126976 /* bytes per write: the unix VFS writes at most 128 KiB - 1 at a time */

typedef struct s_file {
    sqlite3_file base;    /* methods: s_io */
    sqlite3_file *real;   /* the root VFS's file (allocated right after this) */
    struct s_file *wal;   /* main database: its WAL while open, else NULL */
    struct s_file *main;  /* WAL: its main database, else NULL */
    bool is_wal;          /* gathers writes */
    bool commit;          /* a commit frame's header was gathered: write out after its page */
    int err;              /* a write-out failed where SQLite could not be told: told by the next call */
    char *buf;            /* gathered bytes of file offset off.. */
    size_t len, cap;
    sqlite3_int64 off;
} s_file_t;

#define S_HDR ((sizeof(s_file_t) + 15) & ~(size_t)15)

static sqlite3_vfs s_vfs;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_reg_rc = SQLITE_ERROR;

static sqlite3_vfs *s_root(void) { return s_vfs.pAppData; }
static const sqlite3_io_methods *s_m(s_file_t *f) { return f->real->pMethods; }

/* Write out what f gathered. */
static int s_flush(s_file_t *f) {
    if (f->err) { /* told once; what is still gathered is tried again next time */
        int rc = f->err;
        f->err = 0;
        return rc;
    }
    size_t done = 0;
    while (done < f->len) {
        size_t n = f->len - done < S_WRITE_MAX ? f->len - done : S_WRITE_MAX;
        int rc = s_m(f)->xWrite(f->real, f->buf + done, (int)n, f->off + (sqlite3_int64)done);
        if (rc != SQLITE_OK) { /* the rest stays gathered: a later write-out tries again */
            memmove(f->buf, f->buf + done, f->len - done);
            f->len -= done;
            f->off += (sqlite3_int64)done;
            return rc;
        }
        done += n;
    }
    f->len = 0;
    return SQLITE_OK;
}

/* The same where the caller cannot return an error: remembered, and
 * returned by the next call on the WAL that can. */
static void s_flush_quiet(s_file_t *f) {
    int rc = s_flush(f);
    if (rc != SQLITE_OK && !f->err)
        f->err = rc;
}

/* ---- file methods ---------------------------------------------------------- */

static int s_close(sqlite3_file *p) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    if (f->main)
        f->main->wal = NULL;
    if (f->wal)
        f->wal->main = NULL;
    int rc2 = s_m(f)->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    return rc != SQLITE_OK ? rc : rc2;
}

static int s_read(sqlite3_file *p, void *buf, int n, sqlite3_int64 off) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xRead(f->real, buf, n, off);
}

/* Gather n bytes at off; 0 or an SQLite error. */
static int s_gather(s_file_t *f, const void *buf, int n, sqlite3_int64 off) {
    if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > S_BUF_MAX)) {
        int rc = s_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    if ((size_t)n > S_BUF_MAX)
        return s_m(f)->xWrite(f->real, buf, n, off);
    if (f->len + (size_t)n > f->cap) {
        size_t cap = f->cap ? f->cap : 65536;
        while (cap < f->len + (size_t)n)
            cap *= 2;
        char *b = realloc(f->buf, cap);
        if (!b) { /* no memory to gather in: write through */
            int rc = s_flush(f);
            return rc != SQLITE_OK ? rc : s_m(f)->xWrite(f->real, buf, n, off);
        }
        f->buf = b;
        f->cap = cap;
    }
    if (!f->len)
        f->off = off;
    memcpy(f->buf + f->len, buf, (size_t)n);
    f->len += (size_t)n;
    return SQLITE_OK;
}

static int s_write(sqlite3_file *p, const void *buf, int n, sqlite3_int64 off) {
    s_file_t *f = (s_file_t *)p;
    if (!f->is_wal)
        return s_m(f)->xWrite(f->real, buf, n, off);
    /* A WAL frame header is the only 24-byte write; bytes 4..7 are the
     * database size in pages after a commit, 0 in any other frame. */
    bool header = n == 24, commit_header = false;
    if (header) {
        const unsigned char *h = buf;
        commit_header = (h[4] | h[5] | h[6] | h[7]) != 0;
    }
    int rc = s_gather(f, buf, n, off);
    if (rc != SQLITE_OK)
        return rc;
    if (header) {
        f->commit = commit_header;
        return SQLITE_OK;
    }
    /* Past a commit frame's header every write goes out before it returns
     * (its page, and any copy of the frame SQLite pads a sector with). */
    return f->commit ? s_flush(f) : SQLITE_OK;
}

static int s_truncate(sqlite3_file *p, sqlite3_int64 size) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xTruncate(f->real, size);
}

static int s_sync(sqlite3_file *p, int flags) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xSync(f->real, flags);
}

static int s_size(sqlite3_file *p, sqlite3_int64 *size) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xFileSize(f->real, size);
}

static int s_lock(sqlite3_file *p, int level) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xLock(f->real, level);
}

static int s_unlock(sqlite3_file *p, int level) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xUnlock(f->real, level);
}

static int s_reserved(sqlite3_file *p, int *out) {
    s_file_t *f = (s_file_t *)p;
    return s_m(f)->xCheckReservedLock(f->real, out);
}

static int s_fcntl(sqlite3_file *p, int op, void *arg) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    if (op == SQLITE_FCNTL_VFSNAME && arg) { /* say what the shim is over */
        rc = s_m(f)->xFileControl(f->real, op, arg);
        if (rc == SQLITE_OK && *(char **)arg) {
            char *z = sqlite3_mprintf("farm/%z", *(char **)arg);
            *(char **)arg = z;
            return z ? SQLITE_OK : SQLITE_NOMEM;
        }
        return rc;
    }
    return s_m(f)->xFileControl(f->real, op, arg);
}

static int s_sector(sqlite3_file *p) {
    s_file_t *f = (s_file_t *)p;
    return s_m(f)->xSectorSize(f->real);
}

static int s_devchar(sqlite3_file *p) {
    s_file_t *f = (s_file_t *)p;
    return s_m(f)->xDeviceCharacteristics(f->real);
}

static int s_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **out) {
    s_file_t *f = (s_file_t *)p;
    return s_m(f)->xShmMap(f->real, page, size, extend, out);
}

/* Shared-memory locks and barriers of the main database order what the WAL
 * holds against what other connections see: the WAL's gathered bytes go
 * out first. */
static int s_shm_lock(sqlite3_file *p, int offset, int n, int flags) {
    s_file_t *f = (s_file_t *)p;
    if (f->wal) {
        int rc = s_flush(f->wal);
        if (rc != SQLITE_OK)
            return rc;
    }
    return s_m(f)->xShmLock(f->real, offset, n, flags);
}

static void s_shm_barrier(sqlite3_file *p) {
    s_file_t *f = (s_file_t *)p;
    if (f->wal)
        s_flush_quiet(f->wal);
    s_m(f)->xShmBarrier(f->real);
}

static int s_shm_unmap(sqlite3_file *p, int del) {
    s_file_t *f = (s_file_t *)p;
    if (f->wal) {
        int rc = s_flush(f->wal);
        if (rc != SQLITE_OK)
            return rc;
    }
    return s_m(f)->xShmUnmap(f->real, del);
}

static int s_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out) {
    s_file_t *f = (s_file_t *)p;
    int rc = s_flush(f);
    return rc != SQLITE_OK ? rc : s_m(f)->xFetch(f->real, off, n, out);
}

static int s_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page) {
    s_file_t *f = (s_file_t *)p;
    return s_m(f)->xUnfetch(f->real, off, page);
}

static const sqlite3_io_methods s_io = {
    3,        s_close,  s_read,      s_write,       s_truncate,  s_sync,   s_size,
    s_lock,   s_unlock, s_reserved,  s_fcntl,       s_sector,    s_devchar, s_shm_map,
    s_shm_lock, s_shm_barrier, s_shm_unmap, s_fetch, s_unfetch,
};

/* ---- the VFS ------------------------------------------------------------- */

static int s_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags) {
    (void)vfs;
    s_file_t *f = (s_file_t *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)((char *)f + S_HDR);
    int rc = s_root()->xOpen(s_root(), name, f->real, flags, out_flags);
    if (!f->real->pMethods) {
        p->pMethods = NULL;
        return rc;
    }
    /* The shim's methods claim version 3: a root file with fewer (no
     * shared memory) would be unsafe behind them. */
    if (f->real->pMethods->iVersion < 3) {
        f->real->pMethods->xClose(f->real);
        p->pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    p->pMethods = &s_io;
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && name) {
        f->is_wal = true;
        s_file_t *main = (s_file_t *)sqlite3_database_file_object(name);
        if (main && main->base.pMethods == &s_io) {
            f->main = main;
            main->wal = f;
        }
    }
    return rc;
}

static int s_delete(sqlite3_vfs *v, const char *name, int sync) {
    (void)v;
    return s_root()->xDelete(s_root(), name, sync);
}
static int s_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    (void)v;
    return s_root()->xAccess(s_root(), name, flags, out);
}
static int s_fullpath(sqlite3_vfs *v, const char *name, int n, char *out) {
    (void)v;
    return s_root()->xFullPathname(s_root(), name, n, out);
}
static void *s_dlopen(sqlite3_vfs *v, const char *name) {
    (void)v;
    return s_root()->xDlOpen(s_root(), name);
}
static void s_dlerror(sqlite3_vfs *v, int n, char *msg) {
    (void)v;
    s_root()->xDlError(s_root(), n, msg);
}
static void (*s_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) {
    (void)v;
    return s_root()->xDlSym(s_root(), h, sym);
}
static void s_dlclose(sqlite3_vfs *v, void *h) {
    (void)v;
    s_root()->xDlClose(s_root(), h);
}
static int s_random(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return s_root()->xRandomness(s_root(), n, out);
}
static int s_sleep(sqlite3_vfs *v, int us) {
    (void)v;
    return s_root()->xSleep(s_root(), us);
}
static int s_time(sqlite3_vfs *v, double *out) {
    (void)v;
    return s_root()->xCurrentTime(s_root(), out);
}
static int s_lasterr(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return s_root()->xGetLastError ? s_root()->xGetLastError(s_root(), n, out) : 0;
}
static int s_time64(sqlite3_vfs *v, sqlite3_int64 *out) {
    (void)v;
    return s_root()->xCurrentTimeInt64(s_root(), out);
}

static void s_register(void) {
    sqlite3_vfs *root = sqlite3_vfs_find(NULL);
    if (!root || root->iVersion < 2 || !root->xCurrentTimeInt64) {
        s_reg_rc = SQLITE_ERROR;
        return;
    }
    s_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)(S_HDR + (size_t)root->szOsFile),
        .mxPathname = root->mxPathname,
        .zName = FARM_VFS_NAME,
        .pAppData = root,
        .xOpen = s_open,
        .xDelete = s_delete,
        .xAccess = s_access,
        .xFullPathname = s_fullpath,
        .xDlOpen = s_dlopen,
        .xDlError = s_dlerror,
        .xDlSym = s_dlsym,
        .xDlClose = s_dlclose,
        .xRandomness = s_random,
        .xSleep = s_sleep,
        .xCurrentTime = s_time,
        .xGetLastError = s_lasterr,
        .xCurrentTimeInt64 = s_time64,
    };
    s_reg_rc = sqlite3_vfs_register(&s_vfs, 0);
}

int farm_vfs_register(void) {
    if (pthread_once(&s_once, s_register) != 0)
        return SQLITE_ERROR;
    return s_reg_rc;
}
