#include "log_buffer_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string>

namespace allocation_relay::sqlite {
namespace {

// The writer connection's VFS: SQLite's default one, except that what a commit writes to the
// write-ahead log is gathered in memory and written with one call when SQLite next does anything
// else with the log: at the latest the fsync that ends the commit, before the commit is
// published to readers (only under synchronous FULL or EXTRA: NORMAL and OFF publish a commit
// without syncing the log, so they use the default VFS). SQLite writes each log frame with two
// calls, its 24-byte header and then the page: a batch of confirms wrote ~20 frames, ~40
// pwrite calls, a third of the writer's time. The bytes, their order and the fsync are the
// same; a write error shows at the fsync (or the read, truncate, ...) that follows it, which
// fails the commit as the write would have.
class LogBufferVfs {
 public:
  static constexpr const char* kName = "allocation-relay-log";
  static constexpr std::size_t kMaxBuffer = 512 * 1024;  // then what is gathered is written

  // Registers the VFS (once per process); returns its name.
  static const char* Name() {
    static std::once_flag once;
    std::call_once(once, [] {
      real_ = sqlite3_vfs_find(nullptr);
      vfs_ = *real_;
      vfs_.zName = kName;
      vfs_.pNext = nullptr;
      vfs_.szOsFile = static_cast<int>(kRealOffset) + real_->szOsFile;
      vfs_.xOpen = &Open;
      // Everything else is the default VFS's own (they get it, not this one, as their VFS).
      vfs_.xDelete = [](sqlite3_vfs*, const char* name, int sync) {
        return real_->xDelete(real_, name, sync);
      };
      vfs_.xAccess = [](sqlite3_vfs*, const char* name, int flags, int* out) {
        return real_->xAccess(real_, name, flags, out);
      };
      vfs_.xFullPathname = [](sqlite3_vfs*, const char* name, int n, char* out) {
        return real_->xFullPathname(real_, name, n, out);
      };
      vfs_.xDlOpen = [](sqlite3_vfs*, const char* name) { return real_->xDlOpen(real_, name); };
      vfs_.xDlError = [](sqlite3_vfs*, int n, char* out) { real_->xDlError(real_, n, out); };
      vfs_.xDlSym = [](sqlite3_vfs*, void* h, const char* sym) {
        return real_->xDlSym(real_, h, sym);
      };
      vfs_.xDlClose = [](sqlite3_vfs*, void* h) { real_->xDlClose(real_, h); };
      vfs_.xRandomness = [](sqlite3_vfs*, int n, char* out) {
        return real_->xRandomness(real_, n, out);
      };
      vfs_.xSleep = [](sqlite3_vfs*, int us) { return real_->xSleep(real_, us); };
      vfs_.xCurrentTime = [](sqlite3_vfs*, double* t) { return real_->xCurrentTime(real_, t); };
      vfs_.xGetLastError = [](sqlite3_vfs*, int n, char* out) {
        return real_->xGetLastError(real_, n, out);
      };
      if (real_->iVersion >= 2 && real_->xCurrentTimeInt64) {
        vfs_.xCurrentTimeInt64 = [](sqlite3_vfs*, sqlite3_int64* t) {
          return real_->xCurrentTimeInt64(real_, t);
        };
      }
      if (real_->iVersion >= 3) {
        vfs_.xSetSystemCall = [](sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
          return real_->xSetSystemCall(real_, name, call);
        };
        vfs_.xGetSystemCall = [](sqlite3_vfs*, const char* name) {
          return real_->xGetSystemCall(real_, name);
        };
        vfs_.xNextSystemCall = [](sqlite3_vfs*, const char* name) {
          return real_->xNextSystemCall(real_, name);
        };
      }
      sqlite3_vfs_register(&vfs_, /*makeDflt=*/0);
    });
    return kName;
  }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;    // the default VFS's file, at kRealOffset
    std::string* pending;  // bytes not yet written, from `start` on
    sqlite3_int64 start;
  };
  static constexpr std::size_t kRealOffset = (sizeof(File) + 15) / 16 * 16;

  static int Open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
    // Anything but a write-ahead log is the default VFS's file itself (it fits: szOsFile is
    // larger).
    if ((flags & SQLITE_OPEN_WAL) == 0) return real_->xOpen(real_, name, file, flags, out_flags);
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
    f->pending = nullptr;
    f->start = 0;
    const int rc = real_->xOpen(real_, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
      f->base.pMethods = nullptr;
      return rc;
    }
    f->pending = new std::string();
    f->base.pMethods = &kMethods;
    return SQLITE_OK;
  }

  static File* Of(sqlite3_file* file) { return reinterpret_cast<File*>(file); }
  static const sqlite3_io_methods& Real(File* f) { return *f->real->pMethods; }

  // Writes what is gathered, in calls of at most kMaxWrite bytes: the default VFS writes at
  // most 128 KiB - 1 bytes per call (it masks the length with 0x1ffff, and fails a call of a
  // multiple of 128 KiB as a full disk).
  static constexpr std::size_t kMaxWrite = 64 * 1024;
  static int Flush(File* f) {
    int rc = SQLITE_OK;
    const std::string& data = *f->pending;
    for (std::size_t done = 0; done < data.size() && rc == SQLITE_OK; done += kMaxWrite) {
      const std::size_t n = std::min(kMaxWrite, data.size() - done);
      rc = Real(f).xWrite(f->real, data.data() + done, static_cast<int>(n),
                          f->start + static_cast<sqlite3_int64>(done));
    }
    f->pending->clear();
    return rc;
  }

  static int Write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
    File* f = Of(file);
    const bool follows = offset == f->start + static_cast<sqlite3_int64>(f->pending->size());
    if (!f->pending->empty() && (!follows || f->pending->size() >= kMaxBuffer)) {
      if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
    }
    if (f->pending->empty()) f->start = offset;
    f->pending->append(static_cast<const char*>(data), static_cast<std::size_t>(amount));
    return SQLITE_OK;
  }

  static int Close(sqlite3_file* file) {
    File* f = Of(file);
    const int flushed = Flush(f);
    const int closed = Real(f).xClose(f->real);
    delete f->pending;
    f->pending = nullptr;
    return flushed != SQLITE_OK ? flushed : closed;
  }

  // Every other method writes what is gathered first, then is the default VFS's.
  template <auto Method, typename... Args>
  static int Then(sqlite3_file* file, Args... args) {
    File* f = Of(file);
    if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
    return (Real(f).*Method)(f->real, args...);
  }

  static inline const sqlite3_io_methods kMethods = {
      /*iVersion=*/1,
      &Close,
      [](sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
        return Then<&sqlite3_io_methods::xRead>(file, out, amount, offset);
      },
      &Write,
      [](sqlite3_file* file, sqlite3_int64 size) {
        return Then<&sqlite3_io_methods::xTruncate>(file, size);
      },
      [](sqlite3_file* file, int flags) { return Then<&sqlite3_io_methods::xSync>(file, flags); },
      [](sqlite3_file* file, sqlite3_int64* size) {
        return Then<&sqlite3_io_methods::xFileSize>(file, size);
      },
      [](sqlite3_file* file, int lock) { return Then<&sqlite3_io_methods::xLock>(file, lock); },
      [](sqlite3_file* file, int lock) { return Then<&sqlite3_io_methods::xUnlock>(file, lock); },
      [](sqlite3_file* file, int* out) {
        return Then<&sqlite3_io_methods::xCheckReservedLock>(file, out);
      },
      [](sqlite3_file* file, int op, void* arg) {
        return Then<&sqlite3_io_methods::xFileControl>(file, op, arg);
      },
      [](sqlite3_file* file) { return Real(Of(file)).xSectorSize(Of(file)->real); },
      [](sqlite3_file* file) { return Real(Of(file)).xDeviceCharacteristics(Of(file)->real); },
      // Version 1: SQLite maps no shared memory and fetches no pages through a log file.
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
  };

  static inline sqlite3_vfs* real_ = nullptr;
  static inline sqlite3_vfs vfs_{};
};

}  // namespace

const char* LogBufferVfsName() { return LogBufferVfs::Name(); }

}  // namespace allocation_relay::sqlite
