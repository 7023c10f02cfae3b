// The JSON API of spoolctl serve (SPEC.md section 12): the index, pools, a
// job's status, events, tasks, logs (ranged), results and their files, the
// actions, and /metrics. Every file is read through RootFs (beneath the root,
// no link followed); every id is checked with IsValidJobRef or IsValidName
// before it becomes a path. Actions go through cli/actions.h, the code the
// commands use.
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <regex>

#include "cli/actions.h"
#include "cli/serve.h"
#include "spool/job_array.h"
#include "spool/results.h"

namespace spoold::cli::serve {
namespace {

constexpr const char* kId = R"(([^/]+))";

// An integer query parameter; nullopt when absent, -1 when not a number >= 0.
std::optional<int64_t> IntParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  const std::string text = req.get_param_value(name);
  int64_t value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return -1;
  return value;
}

void GetIndex(State& state, httplib::Response& res) {
  auto index = LoadIndex(state);
  if (!index.ok()) return SendError(res, 503, index.error().code, index.error().message);
  SendJson(res, *index);
}

void GetPools(State& state, httplib::Response& res) {
  auto index = LoadIndex(state);
  if (!index.ok()) return SendError(res, 503, index.error().code, index.error().message);
  SendJson(res, Json{{"updated", index->value("updated", Json(nullptr))},
                     {"daemon", index->value("daemon", Json(nullptr))},
                     {"pools", index->value("pools", Json::object())}});
}

// A JSON file of a job's folder, checked to be JSON, sent as it is.
void SendJobJson(State& state, const std::string& id, const char* file, httplib::Response& res) {
  const std::string dir = JobFolderOr404(state, id, res);
  if (dir.empty()) return;
  auto text = state.fs->Read(dir + "/" + file);
  if (!text.ok()) return SendReadError(res, text.error(), std::string(file) + " of " + id);
  if (!Json::accept(*text))
    return SendError(res, 500, "parse_error", std::string(file) + " of " + id + " is not JSON");
  SendJsonText(res, std::move(text.value()));
}

void GetEvents(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string dir = JobFolderOr404(state, id, res);
  if (dir.empty()) return;
  const auto after = IntParam(req, "after");
  if (after && *after < 0) return SendError(res, 400, "bad_parameter", "after takes a sequence number");
  auto text = state.fs->Read(dir + "/events.jsonl", size_t{256} << 20);
  if (!text.ok()) return SendReadError(res, text.error(), "events.jsonl of " + id);
  Json events = Json::array();
  for (std::string_view line : SplitLines(*text, /*partial_last=*/false)) {
    Json event = Json::parse(line, nullptr, false);
    if (!event.is_object()) continue;
    // A line whose seq is no integer cannot be placed after SEQ: left out
    // then, passed on as it is without ?after.
    if (after) {
      const auto seq = event.find("seq");
      if (seq == event.end() || !seq->is_number_integer() || seq->get<int64_t>() <= *after) continue;
    }
    events.push_back(std::move(event));
  }
  SendJson(res, events);
}

// An array's task folders, by index, with each one's state.
void GetTasks(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string dir = JobFolderOr404(state, id, res);
  if (dir.empty()) return;
  const int64_t offset = IntParam(req, "offset").value_or(0);
  const int64_t limit = IntParam(req, "limit").value_or(500);
  if (offset < 0 || limit < 0) return SendError(res, 400, "bad_parameter", "offset and limit take numbers");
  std::vector<int64_t> indexes;
  if (auto names = state.fs->List(dir + "/tasks"); names.ok()) {
    for (const auto& name : *names) {
      int64_t index = 0;
      auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), index);
      if (ec == std::errc() && end == name.data() + name.size()) indexes.push_back(index);
    }
  }
  std::sort(indexes.begin(), indexes.end());
  Json tasks = Json::array();
  for (size_t i = static_cast<size_t>(std::min<int64_t>(offset, static_cast<int64_t>(indexes.size())));
       i < indexes.size() && static_cast<int64_t>(tasks.size()) < std::min<int64_t>(limit, 5000); ++i) {
    auto text = state.fs->Read(dir + "/tasks/" + std::to_string(indexes[i]) + "/status.json");
    Json st = text.ok() ? Json::parse(*text, nullptr, false) : Json(nullptr);
    Json task = {{"id", TaskId(id, indexes[i])}, {"index", indexes[i]}};
    for (const char* key : {"state", "reason", "attempt", "progress", "exit_code", "started", "finished"}) {
      task[key] = st.is_object() ? st.value(key, Json(nullptr)) : Json(nullptr);
    }
    tasks.push_back(std::move(task));
  }
  SendJson(res, Json{{"folders", indexes.size()}, {"offset", offset}, {"tasks", tasks}});
}

void GetLog(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string dir = JobFolderOr404(state, id, res);
  if (dir.empty()) return;
  int attempt = 0;
  const std::string n = req.matches[2];
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), attempt);
  if (ec != std::errc() || end != n.data() + n.size() || attempt < 1) {
    return SendError(res, 400, "bad_parameter", "the attempt is a number from 1");
  }
  const std::string file =
      dir + "/attempts/" + std::to_string(attempt) + "/" + std::string(req.matches[3]) + ".log";
  const auto offset = IntParam(req, "offset");
  const auto length = IntParam(req, "length");
  if ((offset && *offset < 0) || (length && *length < 0)) {
    return SendError(res, 400, "bad_parameter", "offset and length take numbers of bytes");
  }
  const int fd = state.fs->Open(file);
  if (fd < 0) {
    return SendError(res, 404, "not_found",
                     "no " + std::string(req.matches[3]) + " log for attempt " + n + " of " + id);
  }
  if (req.get_param_value("follow") == "1" || req.get_param_value("follow") == "true") {
    ::close(fd);  // followed by name: each read opens it again beneath the root
    return FollowLog(state, req, dir, attempt, file, offset.value_or(0), res);
  }
  SendFileBytes(res, fd, offset.value_or(0), length.value_or(-1), req.get_header_value("Range"),
                "text/plain; charset=utf-8");
}

// "file.tar.gz" as a header value: printable ASCII without quotes, plus the
// UTF-8 name percent-encoded (RFC 6266).
std::string Disposition(const std::string& name) {
  std::string ascii, encoded;
  for (unsigned char c : name) {
    ascii += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '_';
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      encoded += hex;
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

// results/..., or tasks/<index>/results/... (index without leading zeros),
// of plain components: where results.json's hrefs point.
bool IsResultHref(const std::string& path) {
  static const std::regex kHref(R"(^(tasks/(0|[1-9][0-9]{0,17})/)?results/.+)");
  return IsPlainRelativePath(path) && std::regex_match(path, kHref);
}

// A file of the job's results: `path` relative to the job's folder, under
// results/ (or an array's tasks/<index>/results/), as results.json's hrefs are.
void GetFile(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string path = req.matches[2];
  const std::string dir = JobFolderOr404(state, id, res);
  if (dir.empty()) return;
  const int fd = IsResultHref(path) ? state.fs->Open(dir + "/" + path) : -1;
  if (fd < 0) return SendError(res, 404, "not_found", "no result file " + PrintableName(path) + " of " + id);
  std::string type;
  if (auto text = state.fs->Read(dir + "/results.json"); text.ok()) {
    Json item = Json::parse(*text, nullptr, false);
    if (item.is_object() && item.value("assets", Json::object()).is_object()) {
      for (const auto& [key, asset] : item["assets"].items()) {
        if (asset.is_object() && JsonString(asset, "href") == path) type = JsonString(asset, "type");
      }
    }
  }
  if (type.empty() || type.find_first_of("\r\n") != std::string::npos) type = MediaTypeFor(path);
  res.set_header("Content-Disposition", Disposition(path.substr(path.rfind('/') + 1)));
  SendFileBytes(res, fd, 0, -1, req.get_header_value("Range"), type);
}

// The outcome of an action as the answer: done 200, a new job accepted 201,
// not acted on yet 202, refused by the daemon 409.
void SendOutcome(httplib::Response& res, Result<Json> outcome) {
  if (!outcome.ok()) {
    const std::string& code = outcome.error().code;
    const int status = code == "unknown_job"     ? 404
                       : code == "io_error"      ? 500
                       : code == "invalid_state" ? 409
                                                 : 400;
    return SendError(res, status, code, outcome.error().message);
  }
  Json out = std::move(outcome.value());
  const std::string result = JsonString(out, "outcome");
  if (result == "rejected") {
    const Json daemon = out.value("error", Json::object());
    out["error"] = {{"code", JsonString(daemon, "code", "rejected")},
                    {"message", JsonString(daemon, "error", "spoold refused the request")},
                    {"daemon", daemon}};
    return SendJson(res, out, 409);
  }
  SendJson(res, out, result == "done" ? 200 : result == "accepted" ? 201 : 202);
}

void PostJobAction(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string action = req.matches[2];
  if (!IsValidJobRef(id)) return SendError(res, 400, "bad_id", NotAJobMessage(id));
  if (action == "rerun") return SendOutcome(res, RerunJob(state.ctx, id));
  SendOutcome(res, SendControlRequest(
                       state.ctx, action == "cancel" ? ControlAction::kCancel : ControlAction::kStart, id));
}

void PostPoolAction(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string pool = req.matches[1];
  if (!IsValidName(pool)) return SendError(res, 400, "bad_name", PrintableName(pool) + " is not a pool name");
  const bool pause = std::string(req.matches[2]) == "pause";
  SendOutcome(res,
              SendControlRequest(state.ctx, pause ? ControlAction::kPause : ControlAction::kResume, pool));
}

void GetMetrics(State& state, httplib::Response& res) {
  auto text = state.fs->Read("metrics.prom", size_t{64} << 20);
  if (!text.ok() && text.error().code == "not_found") {
    return SendError(res, 404, "no_metrics",
                     state.ctx.Root() + "/metrics.prom does not exist: spoold writes it while it runs");
  }
  if (!text.ok()) return SendError(res, 500, text.error().code, text.error().message);
  res.set_content(std::move(text.value()), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

void SendFileBytes(httplib::Response& res, int fd, int64_t offset, int64_t length, const std::string& range,
                   const std::string& type) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return SendError(res, 500, "io_error", "cannot read the file");
  }
  const int64_t size = st.st_size;
  int64_t start = std::min(offset, size);
  int64_t count = length < 0 ? size - start : std::min(length, size - start);
  res.set_header("X-Spoold-File-Size", std::to_string(size));
  res.set_header("Accept-Ranges", "bytes");
  // The range applies to the window the query asked for (the whole file
  // without ?offset and ?length).
  const ByteRange r = ParseRange(range, count);
  if (r.kind == ByteRange::kUnsatisfiable) {
    ::close(fd);
    res.set_header("Content-Range", "bytes */" + std::to_string(count));
    return SendError(
        res, 416, "range_not_satisfiable",
        "the range " + PrintableName(range) + " lies beyond the " + std::to_string(count) + " bytes");
  }
  if (r.kind == ByteRange::kRange) {
    res.status = 206;
    res.set_header("Content-Range", "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" +
                                        std::to_string(count));
    start += r.first;
    count = r.last - r.first + 1;
  } else {
    res.status = 200;
  }
  if (count <= 0) {  // a body of its own: the answer carries Content-Length: 0
    ::close(fd);
    return res.set_content("", type);
  }
  auto file = std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  res.set_content_provider(
      static_cast<size_t>(count), type,
      [file, start](size_t at, size_t want, httplib::DataSink& sink) {
        char buf[65536];
        const ssize_t n = ::pread(*file, buf, std::min(want, sizeof buf),
                                  static_cast<off_t>(start + static_cast<int64_t>(at)));
        if (n <= 0) return false;  // the file shrank: the answer is cut
        return sink.write(buf, static_cast<size_t>(n));
      },
      [file](bool) {});
}

void RegisterApi(httplib::Server& server, State& state) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  const std::string jobs = std::string("/api/jobs/") + kId;
  server.Get("/api/index", [&state](Req, Res res) { GetIndex(state, res); });
  server.Get("/api/pools", [&state](Req, Res res) { GetPools(state, res); });
  server.Get(jobs, [&state](Req req, Res res) { SendJobJson(state, req.matches[1], "status.json", res); });
  server.Get(jobs + "/events", [&state](Req req, Res res) { GetEvents(state, req, res); });
  server.Get(jobs + "/tasks", [&state](Req req, Res res) { GetTasks(state, req, res); });
  server.Get(jobs + R"(/attempts/([^/]+)/(stdout|stderr))",
             [&state](Req req, Res res) { GetLog(state, req, res); });
  server.Get(jobs + "/results",
             [&state](Req req, Res res) { SendJobJson(state, req.matches[1], "results.json", res); });
  server.Get(jobs + "/files/(.+)", [&state](Req req, Res res) { GetFile(state, req, res); });
  server.Post(jobs + "/(cancel|start|rerun)", [&state](Req req, Res res) { PostJobAction(state, req, res); });
  server.Post(R"(/api/pools/([^/]+)/(pause|resume))",
              [&state](Req req, Res res) { PostPoolAction(state, req, res); });
  server.Get("/metrics", [&state](Req, Res res) { GetMetrics(state, res); });
}

}  // namespace spoold::cli::serve
