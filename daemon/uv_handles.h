// libuv handles with the lifetime rule of STYLE.md: each handle lives in a small
// heap box that is freed only in its close callback. The owning object's
// destructor detaches the callback and calls uv_close once; a callback that
// fires after that finds nothing to call. Nothing else closes handles. Only
// daemon/ includes <uv.h>.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "config/result.h"

namespace spoold {

template <class H, class... Args>
class UvHandle {
 public:
  using Callback = std::function<void(Args...)>;

  UvHandle() : box_(new Box) { box_->handle.data = box_; }
  ~UvHandle() { Close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  H* get() { return &box_->handle; }
  void SetCallback(Callback cb) { box_->callback = std::move(cb); }
  // The caller calls uv_*_init on get() and then this, so Close knows to uv_close.
  void MarkInitialized() { box_->initialized = true; }

  void Close() {
    if (box_ == nullptr) return;
    box_->callback = nullptr;
    if (box_->initialized) {
      uv_close(reinterpret_cast<uv_handle_t*>(&box_->handle),
               [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
    } else {
      delete box_;
    }
    box_ = nullptr;
  }

  // The trampoline libuv calls: finds the box and calls the callback if any.
  static void Invoke(H* handle, Args... args) {
    auto* box = static_cast<Box*>(handle->data);
    if (box->callback) box->callback(args...);
  }

 private:
  struct Box {
    H handle{};
    Callback callback;
    bool initialized = false;
  };
  Box* box_;
};

class Timer : public UvHandle<uv_timer_t> {
 public:
  explicit Timer(uv_loop_t* loop) {
    SPOOLD_CHECK(uv_timer_init(loop, get()) == 0);
    MarkInitialized();
  }
  void Start(uint64_t timeout_ms, uint64_t repeat_ms = 0) {
    uv_timer_start(get(), [](uv_timer_t* t) { Invoke(t); }, timeout_ms, repeat_ms);
  }
  void Stop() { uv_timer_stop(get()); }
  bool Active() { return uv_is_active(reinterpret_cast<uv_handle_t*>(get())) != 0; }
};

class SignalWatch : public UvHandle<uv_signal_t, int> {
 public:
  SignalWatch(uv_loop_t* loop, int signum) {
    SPOOLD_CHECK(uv_signal_init(loop, get()) == 0);
    MarkInitialized();
    SPOOLD_CHECK(uv_signal_start(get(), [](uv_signal_t* s, int n) { Invoke(s, n); }, signum) == 0);
  }
};

class Prepare : public UvHandle<uv_prepare_t> {
 public:
  explicit Prepare(uv_loop_t* loop) {
    SPOOLD_CHECK(uv_prepare_init(loop, get()) == 0);
    MarkInitialized();
    SPOOLD_CHECK(uv_prepare_start(get(), [](uv_prepare_t* p) { Invoke(p); }) == 0);
  }
};

// Watches a folder; the callback gets the name that changed (may be empty when
// the kernel's queue overflowed: then the caller must rescan).
class DirWatch : public UvHandle<uv_fs_event_t, const char*, int> {
 public:
  explicit DirWatch(uv_loop_t* loop) {
    SPOOLD_CHECK(uv_fs_event_init(loop, get()) == 0);
    MarkInitialized();
  }
  int Start(const std::string& path) {
    return uv_fs_event_start(
        get(), [](uv_fs_event_t* h, const char* name, int events, int status) {
          (void)events;
          Invoke(h, name, status);
        },
        path.c_str(), 0);
  }
};

// Watches a descriptor (a pidfd: readable once its process ended). Close the
// handle before the descriptor.
class FdWatch : public UvHandle<uv_poll_t, int> {
 public:
  FdWatch(uv_loop_t* loop, int fd) {
    SPOOLD_CHECK(uv_poll_init(loop, get(), fd) == 0);
    MarkInitialized();
  }
  int Start(int events) {
    return uv_poll_start(get(), events, [](uv_poll_t* p, int status, int) { Invoke(p, status); });
  }
};

// Runs `work` in libuv's thread pool, then `done` on the loop's thread. What
// `work` touches must not be touched by the loop meanwhile: give it copies.
inline void RunInThreadPool(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  struct Job {
    uv_work_t req{};
    std::function<void()> work, done;
  };
  auto* job = new Job{{}, std::move(work), std::move(done)};
  job->req.data = job;
  const int rc = uv_queue_work(
      loop, &job->req, [](uv_work_t* req) { static_cast<Job*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<Job> j(static_cast<Job*>(req->data));
        j->done();
      });
  SPOOLD_CHECK(rc == 0);  // fails only for a null callback
}

// Deletes `path` in libuv's thread pool: for a large file, whose blocks take
// milliseconds to free, off the loop's thread. The outcome is not waited for
// (a file left behind is removed at the next start by its owner).
inline void UnlinkInThreadPool(uv_loop_t* loop, const std::string& path) {
  auto* req = new uv_fs_t;
  int rc = uv_fs_unlink(loop, req, path.c_str(), [](uv_fs_t* r) {
    uv_fs_req_cleanup(r);
    delete r;
  });
  if (rc != 0) {
    uv_fs_req_cleanup(req);
    delete req;
  }
}

}  // namespace spoold
