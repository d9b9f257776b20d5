// LogBufferVfs: the writer connection's VFS (see log_buffer_vfs.cpp for what it does and why).
#ifndef ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_LOG_BUFFER_VFS_H_
#define ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_LOG_BUFFER_VFS_H_

namespace allocation_relay::sqlite {

// SQLite's default VFS, except that a commit's writes to the write-ahead log are gathered and
// written with one call before the log is synced. Use only under synchronous FULL or EXTRA.
// Registers itself (once per process, thread-safe) and returns its name.
const char* LogBufferVfsName();

}  // namespace allocation_relay::sqlite

#endif  // ALLOCATION_RELAY_SHARED_SRC_STORE_SQLITE_LOG_BUFFER_VFS_H_
