// spoolctl serve (issue 19): the command, its options, the checks every
// request passes before any route sees it, the page and its assets, and a
// clean stop on SIGINT/SIGTERM. The server runs as the user who starts it and
// acts only through the spool's files (control requests and job files it
// drops as that user), so the file system and the daemon decide who may.
//
// Cross-site and rebinding protection (SPEC.md section 12): the Host header
// must name the listen address, localhost, 127.0.0.1 or [::1] with the port;
// /api/ and /metrics answer no other site (Origin, Sec-Fetch-Site); a POST
// must carry the per-server random token (X-Spoold-Token, embedded in the
// page) and come from a connection of the serving user (when the client is
// on this host: its socket's owner), so another user of the machine gets the
// read-only view.
#include "cli/serve.h"

#include <fcntl.h>
#include <httplib.h>
#include <pwd.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "spool/fileio.h"

namespace spoold::cli {
namespace serve {

void SendError(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  res.status = status;
  res.set_content(DumpJson(Json{{"error", {{"code", code}, {"message", SanitizeUtf8(message)}}}}) + "\n",
                  "application/json");
}

void SendJson(httplib::Response& res, const Json& value, int status) {
  res.status = status;
  res.set_content(DumpJson(value) + "\n", "application/json");
}

void SendJsonText(httplib::Response& res, std::string text) {
  res.status = 200;
  res.set_content(std::move(text), "application/json");
}

void SendReadError(httplib::Response& res, const Error& error, const std::string& what) {
  if (error.code == "not_found") return SendError(res, 404, "not_found", what + " does not exist");
  SendError(res, 500, error.code, error.message);
}

namespace {

constexpr int kDefaultPort = 8642;
constexpr int kThreads = 64;  // each SSE or follow stream holds one

// The listen address: HOST:PORT, [IPV6]:PORT, or HOST alone (port 8642).
Result<std::pair<std::string, int>> ParseListen(const std::string& text) {
  std::string host = text;
  std::string port = std::to_string(kDefaultPort);
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) return MakeError("usage", "--listen: no ] after the IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return MakeError("usage", "--listen takes HOST:PORT or [IPV6]:PORT");
      port = text.substr(close + 2);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return MakeError("usage", "--listen: the host is missing (127.0.0.1:8642)");
  auto number = ParseIntArg("--listen's port", port, 0, 65535);
  if (!number.ok()) return number.error();
  return std::make_pair(host, static_cast<int>(*number));
}

std::string RandomToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) std::abort();  // no randomness: no token worth having
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  return token;
}

bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The Host headers this server answers: the listen address (unless a
// wildcard), localhost, 127.0.0.1 and [::1], each with the port.
// On port 80 a browser sends the name alone.
bool HostAllowed(const State& state, const std::string& host) {
  const std::string port = ":" + std::to_string(state.port);
  const bool wildcard = state.host == "0.0.0.0" || state.host == "::";
  const std::string listen = state.host.find(':') != std::string::npos ? "[" + state.host + "]" : state.host;
  std::vector<std::string> names = {"localhost", "127.0.0.1", "[::1]"};
  if (!wildcard) names.push_back(listen);
  for (const std::string& name : names) {
    if (host == name + port || (state.port == 80 && host == name)) return true;
  }
  return false;
}

// Origin and Sec-Fetch-Site: whether the request comes from another site (a
// browser sends them; a tool such as curl sends neither).
bool CrossSite(const httplib::Request& req, const std::string& host) {
  const std::string site = req.get_header_value("Sec-Fetch-Site");
  return (req.has_header("Origin") && req.get_header_value("Origin") != "http://" + host) ||
         site == "cross-site" || site == "same-site";
}

// Host; for /api/ and /metrics no other site (a page elsewhere could hold
// every stream slot with <img src=.../api/live>); for anything but GET and
// HEAD: read-only, Origin, the peer's user, token. The library's range
// handling is switched off for every route here (SendFileBytes reads the
// Range header itself).
httplib::Server::HandlerResponse Guard(State& state, const httplib::Request& req, httplib::Response& res) {
  using R = httplib::Server::HandlerResponse;
  // The Request is the library's own, not const: routing() hands it here.
  const_cast<httplib::Request&>(req).ranges.clear();
  ForgetLastFileRead();
  const std::string host = req.get_header_value("Host");
  if (!HostAllowed(state, host)) {
    SendError(res, 403, "bad_host",
              "Host " + PrintableName(host) + " is not this server's address (DNS rebinding is refused)");
    return R::Handled;
  }
  const bool api = req.path.rfind("/api/", 0) == 0 || req.path == "/metrics";
  if (req.method == "GET" || req.method == "HEAD") {
    if (api && CrossSite(req, host)) {
      SendError(res, 403, "bad_origin", "a request from another site is refused");
      return R::Handled;
    }
    return R::Unhandled;
  }
  if (state.read_only) {
    SendError(res, 403, "read_only", "spoolctl serve runs with --read-only: it takes no actions");
    return R::Handled;
  }
  if (CrossSite(req, host)) {
    SendError(res, 403, "bad_origin",
              "a request from " + PrintableName(req.get_header_value("Origin")) + " is refused (cross-site)");
    return R::Handled;
  }
  if (PeerOf(state, req) == Peer::kOther) {
    SendError(res, 403, "not_owner",
              "this server acts as " + state.user +
                  ", and this connection comes from another user of the machine: it may only look");
    return R::Handled;
  }
  if (!SameSecret(req.get_header_value("X-Spoold-Token"), state.token)) {
    SendError(res, 403, "bad_token",
              "a POST needs this server's token in the X-Spoold-Token header (GET /api/session gives it)");
    return R::Handled;
  }
  return R::Unhandled;
}

const WebAsset* FindAsset(const std::string& path) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (path == kWebAssets[i].path) return &kWebAssets[i];
  }
  return nullptr;
}

void SendAsset(httplib::Response& res, const WebAsset& asset) {
  res.set_content(reinterpret_cast<const char*>(asset.data), asset.size,
                  std::string(asset.type) + "; charset=utf-8");
}

// Why a request may not act ("" when it may): --read-only, or another user.
std::string ReadOnlyNote(const State& state, const httplib::Request& req) {
  if (state.read_only) return "read-only";
  return MayAct(state, req) ? "" : "read-only: you are not " + state.user;
}

// The page, with the token, the mode and the note filled in (all plain
// ASCII without quotes or markup: the token is hex, the user name checked).
std::string Page(const State& state, const std::string& note) {
  const WebAsset* page = FindAsset("/index.html");
  std::string html(reinterpret_cast<const char*>(page->data), page->size);
  auto fill = [&html](const std::string& mark, const std::string& value) {
    for (size_t at; (at = html.find(mark)) != std::string::npos;) html.replace(at, mark.size(), value);
  };
  fill("@SPOOLD_TOKEN@", note.empty() ? state.token : "");
  fill("@SPOOLD_MODE@", note.empty() ? "read-write" : "read-only");
  fill("@SPOOLD_NOTE@", note);
  return html;
}

// The serving user's name as the page shows it: the name when it is plain
// (letters, digits, ".", "_", "-"), else "uid N".
std::string UserName(uid_t uid) {
  std::string name;
  std::vector<char> buf(16384);
  struct passwd pw, *found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) name = pw.pw_name;
  const bool plain =
      !name.empty() && name.size() <= 64 &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
          std::string::npos;
  return plain ? name : "uid " + std::to_string(uid);
}

void RegisterPages(httplib::Server& server, State& state) {
  auto send_page = [&state](const httplib::Request& req, httplib::Response& res) {
    res.set_content(Page(state, ReadOnlyNote(state, req)), "text/html; charset=utf-8");
  };
  server.Get("/", send_page);
  server.Get("/pools", send_page);
  server.Get(R"(/jobs/[^/]+)", send_page);
  // The script modules and the style sheet, each at its own name (the page
  // itself is served with its token filled in, above).
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset* asset = &kWebAssets[i];
    if (std::string_view(asset->path) == "/index.html") continue;
    server.Get(asset->path,
               [asset](const httplib::Request&, httplib::Response& res) { SendAsset(res, *asset); });
  }
  server.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  server.Get("/api/session", [&state](const httplib::Request& req, httplib::Response& res) {
    const std::string note = ReadOnlyNote(state, req);
    SendJson(res, Json{{"token", note.empty() ? Json(state.token) : Json(nullptr)},
                       {"read_only", !note.empty()},
                       {"read_only_reason", note.empty()      ? Json(nullptr)
                                            : state.read_only ? Json("read_only")
                                                              : Json("not_owner")},
                       {"user", state.user},
                       {"root", SanitizeUtf8(state.ctx.Root())},
                       {"version", SPOOLD_VERSION}});
  });
}

// 127.0.0.0/8, ::1 and localhost: only this host can connect.
bool IsLoopbackName(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// SIGINT and SIGTERM, blocked in every thread, are taken by this one.
void StopOnSignal(httplib::Server& server, State& state, const sigset_t& signals) {
  int sig = 0;
  ::sigwait(&signals, &sig);
  std::fprintf(stderr, "spoolctl serve: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  state.live.Stop();
  server.stop();
}

}  // namespace
}  // namespace serve

int CmdServe(Context& ctx, const Args& args) {
  using namespace serve;
  if (!args.positional.empty()) return UsageError("serve takes no arguments");
  auto listen = ParseListen(args.Value("listen").value_or("127.0.0.1:" + std::to_string(kDefaultPort)));
  if (!listen.ok()) return UsageError(listen.error().message);
  State state;
  state.ctx = ctx;
  state.read_only = args.Flag("read-only");
  state.host = listen->first;
  state.token = RandomToken();
  state.euid = ::geteuid();
  state.user = UserName(state.euid);
  const int root_fd = ::open(ctx.Root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Fail(ErrnoMessage("open", ctx.Root(), errno));
  state.fs = std::make_unique<RootFs>(root_fd);

  // Blocked before any thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a death

  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server.set_keep_alive_timeout(2);  // idle connections let a stop finish soon
  server.set_payload_max_length(64 << 10);
  server.set_default_headers(
      {{"Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
       {"X-Content-Type-Options", "nosniff"},
       {"X-Frame-Options", "DENY"},
       {"Referrer-Policy", "no-referrer"},
       {"Cache-Control", "no-store"}});
  server.set_pre_routing_handler(
      [&state](const httplib::Request& req, httplib::Response& res) { return Guard(state, req, res); });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) {
      SendError(res, res.status, res.status == 404 ? "not_found" : "http_error",
                res.status == 404 ? "no such page or endpoint: " + PrintableName(req.path)
                                  : "the request cannot be served (HTTP " + std::to_string(res.status) + ")");
    }
  });
  // An exception of a handler (a file of unexpected shape): a 500 naming the
  // file it read last, never a dropped connection.
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        const std::string& file = LastFileRead();
        SendError(res, 500, "internal_error",
                  "the server failed on " + PrintableName(req.path) +
                      (file.empty() ? std::string() : " reading " + PrintableName(file)) + ": " + what);
      });
  RegisterPages(server, state);
  RegisterApi(server, state);
  RegisterLive(server, state);

  if (listen->second == 0) {
    state.port = server.bind_to_any_port(state.host);
  } else if (server.bind_to_port(state.host, listen->second)) {
    state.port = listen->second;
  }
  if (state.port <= 0) {
    return Fail("cannot listen on " + args.Value("listen").value_or("127.0.0.1:8642") + ": " +
                std::strerror(errno));
  }
  if (!state.live.Start(ctx.Root(), state.fs.get())) {
    PrintNote("inotify is not available: live updates fall back to once a second");
  }
  const std::string shown = state.host.find(':') != std::string::npos ? "[" + state.host + "]" : state.host;
  // The first line of stdout is the URL (tests read it with --listen HOST:0).
  std::printf("http://%s:%d/\n", shown.c_str(), state.port);
  std::fflush(stdout);
  std::fprintf(stderr, "spoolctl serve: %s on %s%s; Ctrl-C stops\n", ctx.Root().c_str(), shown.c_str(),
               state.read_only ? " (read-only)" : "");
  if (!IsLoopbackName(state.host)) {
    std::string warning = shown + " is not a loopback address: whoever reaches it sees the spool";
    if (!state.read_only) {
      warning += ", and a client on another host that loads the page may act as " + state.user +
                 " (cancel, start, rerun, pause, resume); --read-only prevents that";
    }
    std::fprintf(stderr, "spoolctl serve: warning: %s\n", warning.c_str());
  }
  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    StopOnSignal(server, state, signals);
    signalled = true;
  });
  const bool served = server.listen_after_bind();
  state.live.Stop();
  // listen_after_bind returns after stop(); should it fail on its own, the
  // stopper thread is ended with a signal of our own.
  if (!signalled) ::pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return served || signalled ? kExitOk : Fail("the server stopped unexpectedly");
}

}  // namespace spoold::cli
