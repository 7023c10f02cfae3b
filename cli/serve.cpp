// spoolctl serve (issue 19): the command, its options, the checks every
// request passes before any route sees it, the page and its assets, and a
// clean stop on SIGINT/SIGTERM. The server runs as the user who starts it and
// acts only through the spool's files (control requests and job files it
// drops as that user), so the file system and the daemon decide who may.
//
// Cross-site and rebinding protection (SPEC.md section 12): the Host header
// must name the listen address, localhost, 127.0.0.1 or [::1] with the port;
// a POST must carry the per-server random token (X-Spoold-Token, embedded in
// the page) and, when the browser sends an Origin, come from this origin.
#include "cli/serve.h"

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
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

namespace {}  // namespace

// The socket of a request's connection: the one of ours whose ends are the
// request's ports (cpp-httplib does not hand it to handlers).
int ClientSocket(const httplib::Request& req) {
  for (int fd = 3; fd < 65536; ++fd) {
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
      if (errno == EBADF && fd > 1024) break;
      continue;
    }
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    auto port = [](const sockaddr_storage& a) {
      if (a.ss_family == AF_INET)
        return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port));
      if (a.ss_family == AF_INET6)
        return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port));
      return -1;
    };
    if (port(local) == req.local_port && port(peer) == req.remote_port) return fd;
  }
  return -1;
}

bool ClientGone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
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
bool HostAllowed(const State& state, const std::string& host) {
  const std::string port = ":" + std::to_string(state.port);
  const bool wildcard = state.host == "0.0.0.0" || state.host == "::";
  const std::string listen = state.host.find(':') != std::string::npos ? "[" + state.host + "]" : state.host;
  for (const std::string& name : {std::string("localhost"), std::string("127.0.0.1"), std::string("[::1]")}) {
    if (host == name + port) return true;
  }
  return !wildcard && host == listen + port;
}

// Host, then for anything but GET and HEAD: read-only, Origin, token.
httplib::Server::HandlerResponse Guard(State& state, const httplib::Request& req, httplib::Response& res) {
  using R = httplib::Server::HandlerResponse;
  const std::string host = req.get_header_value("Host");
  if (!HostAllowed(state, host)) {
    SendError(res, 403, "bad_host",
              "Host " + PrintableName(host) + " is not this server's address (DNS rebinding is refused)");
    return R::Handled;
  }
  if (req.method == "GET" || req.method == "HEAD") return R::Unhandled;
  if (state.read_only) {
    SendError(res, 403, "read_only", "spoolctl serve runs with --read-only: it takes no actions");
    return R::Handled;
  }
  const std::string origin = req.get_header_value("Origin");
  if (req.has_header("Origin") && origin != "http://" + host) {
    SendError(res, 403, "bad_origin", "a request from " + PrintableName(origin) + " is refused (cross-site)");
    return R::Handled;
  }
  const std::string site = req.get_header_value("Sec-Fetch-Site");
  if (site == "cross-site" || site == "same-site") {
    SendError(res, 403, "bad_origin", "a cross-site request is refused");
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

// The page, with the token and the mode filled in (both are plain ASCII).
std::string Page(const State& state) {
  const WebAsset* page = FindAsset("/index.html");
  std::string html(reinterpret_cast<const char*>(page->data), page->size);
  auto fill = [&html](const std::string& mark, const std::string& value) {
    for (size_t at; (at = html.find(mark)) != std::string::npos;) html.replace(at, mark.size(), value);
  };
  fill("@SPOOLD_TOKEN@", state.read_only ? "" : state.token);
  fill("@SPOOLD_MODE@", state.read_only ? "read-only" : "read-write");
  return html;
}

void RegisterPages(httplib::Server& server, State& state) {
  const std::string page = Page(state);
  auto send_page = [page](const httplib::Request&, httplib::Response& res) {
    res.set_content(page, "text/html; charset=utf-8");
  };
  server.Get("/", send_page);
  server.Get("/pools", send_page);
  server.Get(R"(/jobs/[^/]+)", send_page);
  for (const char* path : {"/app.js", "/style.css"}) {
    const WebAsset* asset = FindAsset(path);
    server.Get(path, [asset](const httplib::Request&, httplib::Response& res) { SendAsset(res, *asset); });
  }
  server.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  server.Get("/api/session", [&state](const httplib::Request&, httplib::Response& res) {
    SendJson(res, Json{{"token", state.read_only ? Json(nullptr) : Json(state.token)},
                       {"read_only", state.read_only},
                       {"root", SanitizeUtf8(state.ctx.Root())},
                       {"version", SPOOLD_VERSION}});
  });
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
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, 500, "internal_error", "the server failed on this request");
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
  if (!state.live.Start(ctx.Root())) {
    PrintNote("inotify is not available: live updates fall back to once a second");
  }
  const std::string shown = state.host.find(':') != std::string::npos ? "[" + state.host + "]" : state.host;
  // The first line of stdout is the URL (tests read it with --listen HOST:0).
  std::printf("http://%s:%d/\n", shown.c_str(), state.port);
  std::fflush(stdout);
  std::fprintf(stderr, "spoolctl serve: %s on %s%s; Ctrl-C stops\n", ctx.Root().c_str(), shown.c_str(),
               state.read_only ? " (read-only)" : "");
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
