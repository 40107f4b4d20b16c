/* farm_vfs: the VFS the farm's store opens its database with — the
 * system's own, with a commit's WAL frames written by one system call (see
 * farm_vfs.c). */
#ifndef FARM_VFS_H
#define FARM_VFS_H

#include <sqlite3.h>

#define FARM_VFS_NAME "farm"

/* Register the VFS (once per process, thread-safe; not the default).
 * Returns SQLITE_OK or an SQLite error code. */
int farm_vfs_register(void);

#endif
