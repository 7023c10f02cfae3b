// Live updates for spoolctl serve: one inotify watch on the root (index.json
// and index.active.json are renamed into place within a second of any change,
// SPEC.md section 7) and on the folders a stream follows, counters that move
// with them, and the two kinds of streams built on those: Server-Sent Events
// (/api/live) and a log followed until its attempt ends (?follow=1). Each
// stream holds a thread of the server's pool, so their number is bounded
// (503 beyond); each ends when its client goes or the server stops.
#include <httplib.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <memory>

#include "cli/serve.h"

namespace spoold::cli::serve {
namespace {

constexpr uint32_t kRootMask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE;
// Without IN_DONT_FOLLOW: a folder is watched as /proc/self/fd/N, a link to
// the folder opened beneath the root.
constexpr uint32_t kDirMask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_ONLYDIR;
constexpr int kSseKeepaliveMs = 2000;  // a comment line: finds a client gone, keeps proxies open
constexpr int kFollowWaitMs = 250;
// What one call of a follow's content provider sends at most: a log that
// grows fast still lets the stream look for its client and a stop.
constexpr int64_t kFollowChunk = int64_t{1} << 20;

bool IsIndexFile(const char* name) {
  const std::string_view n(name);
  return n == "index.json" || n == "index.active.json";
}

}  // namespace

Live::~Live() {
  Stop();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool Live::Start(const std::string& root, const RootFs* fs) {
  root_ = root;
  fs_ = fs;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  const bool watching = inotify_fd_ >= 0 && ::inotify_add_watch(inotify_fd_, root.c_str(), kRootMask) >= 0;
  if (!watching && inotify_fd_ >= 0) {
    ::close(inotify_fd_);
    inotify_fd_ = -1;
  }
  thread_ = std::thread([this] { Run(); });
  return watching;
}

void Live::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

// Without inotify every counter moves once a second: streams then poll.
void Live::Bump() {
  {
    std::lock_guard lock(mu_);
    ++index_gen_;
    for (auto& [dir, watched] : jobs_) ++watched.gen;
  }
  cv_.notify_all();
}

void Live::Run() {
  alignas(struct inotify_event) char buf[16384];
  while (!stopped_) {
    struct pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, 1000);
    if (stopped_) break;
    if (inotify_fd_ < 0) {
      Bump();
      continue;
    }
    if (ready <= 0 || !(fds[1].revents & POLLIN)) continue;
    const ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) continue;
    std::lock_guard lock(mu_);
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        ++index_gen_;
        for (auto& [dir, watched] : jobs_) ++watched.gen;
        continue;
      }
      if (ev->len > 0 && IsIndexFile(ev->name)) ++index_gen_;
      for (auto& [dir, watched] : jobs_) {
        if (watched.wd == ev->wd) ++watched.gen;
      }
    }
    cv_.notify_all();
  }
}

uint64_t Live::JobGeneration(const std::string& rel_dir) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(rel_dir);
  return it == jobs_.end() ? 0 : it->second.gen;
}

void Live::Watch(const std::string& rel_dir) {
  std::lock_guard lock(mu_);
  Watched& w = jobs_[rel_dir];
  if (w.users++ > 0 || inotify_fd_ < 0 || fs_ == nullptr) return;
  // Opened beneath the root, no link followed on the way (a job may plant
  // one in its folder), then watched through the descriptor's name.
  const int fd = fs_->Open(rel_dir, /*directory=*/true);
  if (fd < 0) return;
  w.wd = ::inotify_add_watch(inotify_fd_, ("/proc/self/fd/" + std::to_string(fd)).c_str(), kDirMask);
  ::close(fd);
}

void Live::Unwatch(const std::string& rel_dir) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(rel_dir);
  if (it == jobs_.end() || --it->second.users > 0) return;
  // A folder watched twice shares one wd: removed with its last user.
  if (it->second.wd >= 0 && inotify_fd_ >= 0) ::inotify_rm_watch(inotify_fd_, it->second.wd);
  jobs_.erase(it);
}

void Live::WaitForChange(uint64_t index_seen, const std::string& rel_dir, uint64_t job_seen, int ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] {
    if (stopped_ || index_gen_ != index_seen) return true;
    auto it = rel_dir.empty() ? jobs_.end() : jobs_.find(rel_dir);
    return it != jobs_.end() && it->second.gen != job_seen;
  });
}

bool TakeStreamSlot(State& state, httplib::Response& res) {
  if (state.streams.fetch_add(1) >= state.max_streams) {
    state.streams.fetch_sub(1);
    SendError(res, 503, "too_many_streams",
              "this server follows at most " + std::to_string(state.max_streams) +
                  " streams at once (live updates and logs); close one and try again");
    return false;
  }
  return true;
}

namespace {

// What one stream keeps between calls of its content provider.
struct Stream {
  State* state;
  std::string dir;  // the watched folder ("" for none)
  uint64_t index_seen = 0;
  uint64_t job_seen = 0;
  bool started = false;
  int socket = -1;  // the client's, to see it go
  ~Stream() {
    if (!dir.empty()) state->live.Unwatch(dir);
    state->streams.fetch_sub(1);
  }
};

// GET /api/live[?job=ID]: "index" when index.json or index.active.json is
// replaced, "job" when the job's folder changes; a comment every 2 s.
void GetLive(State& state, const httplib::Request& req, httplib::Response& res) {
  std::string dir;
  if (req.has_param("job")) {
    dir = JobFolderOr404(state, req.get_param_value("job"), res);
    if (dir.empty()) return;
  }
  if (!TakeStreamSlot(state, res)) return;
  auto stream = std::make_shared<Stream>();
  stream->state = &state;
  stream->dir = dir;
  stream->socket = ClientSocket(req);
  if (!dir.empty()) state.live.Watch(dir);
  stream->index_seen = state.live.IndexGeneration();
  stream->job_seen = dir.empty() ? 0 : state.live.JobGeneration(dir);
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", [stream](size_t, httplib::DataSink& sink) {
    // Nothing here reads files: no exception to catch.
    Stream& s = *stream;
    Live& live = s.state->live;
    if (!s.started) {
      s.started = true;
      const std::string hello = "retry: 1000\nevent: hello\ndata: {}\n\n";
      return sink.write(hello.data(), hello.size());
    }
    live.WaitForChange(s.index_seen, s.dir, s.job_seen, kSseKeepaliveMs);
    if (live.Stopped() || ClientGone(s.socket)) {
      sink.done();
      return true;
    }
    std::string out;
    if (const uint64_t gen = live.IndexGeneration(); gen != s.index_seen) {
      s.index_seen = gen;
      out += "event: index\ndata: {\"generation\":" + std::to_string(gen) + "}\n\n";
    }
    if (const uint64_t gen = s.dir.empty() ? 0 : live.JobGeneration(s.dir); gen != s.job_seen) {
      s.job_seen = gen;
      out += "event: job\ndata: {\"generation\":" + std::to_string(gen) + "}\n\n";
    }
    if (out.empty()) out = ": keepalive\n\n";
    return sink.write(out.data(), out.size());
  });
}

// Whether attempt `attempt` has ended: status.json lists it with a finish
// time, has moved past it, or the job is terminal. A status that cannot be
// read counts as ended (the folder went).
bool AttemptEnded(const State& state, const std::string& rel_dir, int attempt) {
  auto text = state.fs->Read(rel_dir + "/status.json");
  if (!text.ok()) return text.error().code == "not_found";
  Json st = Json::parse(*text, nullptr, false);
  if (!st.is_object()) return false;
  if (IsTerminalStateName(JsonString(st, "state"))) return true;
  if (st.value("attempt", Json(0)).is_number_integer() && st["attempt"].get<int64_t>() > attempt) return true;
  for (const auto& a : st.value("attempts", Json::array())) {
    if (a.is_object() && a.value("attempt", Json(0)) == attempt)
      return !a.value("finished", Json(nullptr)).is_null();
  }
  return false;
}

// Copies what `rel_file` holds from *offset on into the sink, at most
// kFollowChunk bytes: kMore when that much went and more may wait, kGone when
// the client is gone.
enum class Copied { kAll, kMore, kGone };
Copied CopyNew(const State& state, const std::string& rel_file, int64_t* offset, httplib::DataSink& sink) {
  const int fd = state.fs->Open(rel_file);
  if (fd < 0) return Copied::kAll;  // not there yet
  char buf[65536];
  Copied out = Copied::kAll;
  for (int64_t sent = 0;;) {
    if (sent >= kFollowChunk) {
      out = Copied::kMore;
      break;
    }
    const ssize_t n = ::pread(fd, buf, sizeof buf, *offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!sink.write(buf, static_cast<size_t>(n))) {
      out = Copied::kGone;
      break;
    }
    *offset += n;
    sent += n;
  }
  ::close(fd);
  return out;
}

}  // namespace

void FollowLog(State& state, const httplib::Request& req, const std::string& rel_dir, int attempt,
               const std::string& rel_file, int64_t offset, httplib::Response& res) {
  if (!TakeStreamSlot(state, res)) return;
  auto stream = std::make_shared<Stream>();
  stream->state = &state;
  stream->socket = ClientSocket(req);
  // The attempt's folder: its logs grow there.
  stream->dir = rel_dir + "/attempts/" + std::to_string(attempt);
  state.live.Watch(stream->dir);
  auto position = std::make_shared<int64_t>(offset);
  res.set_header("X-Accel-Buffering", "no");
  // Not text/plain: cpp-httplib compresses text/* (but event streams) for a
  // client that accepts it, and its compressors hold a stream's output back
  // until the end, so a browser would see nothing while the job runs.
  res.set_chunked_content_provider("application/octet-stream", [stream, position, rel_dir, attempt, rel_file](
                                                                   size_t, httplib::DataSink& sink) {
    Stream& s = *stream;
    const State& st = *s.state;
    s.job_seen = s.state->live.JobGeneration(s.dir);
    // The state first, then the file: the daemon records an attempt's
    // end only once its processes are gone, so after an end is seen the
    // last read gets every byte.
    try {
      const bool ended = AttemptEnded(st, rel_dir, attempt);
      const Copied copied = CopyNew(st, rel_file, position.get(), sink);
      if (copied == Copied::kGone) return false;
      if ((ended && copied == Copied::kAll) || s.state->live.Stopped()) {
        sink.done();
        return true;
      }
      if (ClientGone(s.socket)) return false;
      if (copied == Copied::kAll) {
        s.state->live.WaitForChange(s.state->live.IndexGeneration(), s.dir, s.job_seen, kFollowWaitMs);
      }
      return true;
    } catch (const std::exception&) {
      return false;  // an exception must not leave the provider: the stream ends, cut
    }
  });
}

void RegisterLive(httplib::Server& server, State& state) {
  server.Get("/api/live",
             [&state](const httplib::Request& req, httplib::Response& res) { GetLive(state, req, res); });
}

}  // namespace spoold::cli::serve
