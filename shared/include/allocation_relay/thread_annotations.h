// Thread-safety annotations, checked by Clang's -Wthread-safety (the `clang-threads` build of
// the test command), and the annotated Mutex they need: which mutex guards which member
// (GUARDED_BY), which functions must be called with it held (REQUIRES) or without (EXCLUDES).
// Under GCC the macros expand to nothing and Mutex is a plain std::mutex.
//
// Mutex and MutexLock are what std::mutex and std::unique_lock are; MutexLock also waits on a
// std::condition_variable (so the analysis knows the mutex is held again after the wait).
#ifndef ALLOCATION_RELAY_THREAD_ANNOTATIONS_H_
#define ALLOCATION_RELAY_THREAD_ANNOTATIONS_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define ALLOCATION_RELAY_TSA(x) __attribute__((x))
#else
#define ALLOCATION_RELAY_TSA(x)
#endif

#define CAPABILITY(x) ALLOCATION_RELAY_TSA(capability(x))
#define SCOPED_CAPABILITY ALLOCATION_RELAY_TSA(scoped_lockable)
#define GUARDED_BY(x) ALLOCATION_RELAY_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) ALLOCATION_RELAY_TSA(pt_guarded_by(x))
#define REQUIRES(...) ALLOCATION_RELAY_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) ALLOCATION_RELAY_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) ALLOCATION_RELAY_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) ALLOCATION_RELAY_TSA(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS ALLOCATION_RELAY_TSA(no_thread_safety_analysis)

namespace allocation_relay {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds `mu` from construction to destruction, except between Unlock() and Lock().
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() RELEASE() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

  // cv.wait(lock, done): returns with the mutex held and done() true.
  template <typename Predicate>
  void Wait(std::condition_variable& cv, Predicate done) {
    cv.wait(lock_, done);
  }
  // cv.wait_until(lock, deadline, done): returns done().
  template <typename Clock, typename Duration, typename Predicate>
  bool WaitUntil(std::condition_variable& cv,
                 const std::chrono::time_point<Clock, Duration>& deadline, Predicate done) {
    return cv.wait_until(lock_, deadline, done);
  }
  // cv.wait_for(lock, timeout): returns with the mutex held, woken or timed out.
  template <typename Rep, typename Period>
  void WaitFor(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& timeout) {
    cv.wait_for(lock_, timeout);
  }
  // cv.wait_for(lock, timeout, done): returns done().
  template <typename Rep, typename Period, typename Predicate>
  bool WaitFor(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& timeout,
               Predicate done) {
    return cv.wait_for(lock_, timeout, done);
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_THREAD_ANNOTATIONS_H_
