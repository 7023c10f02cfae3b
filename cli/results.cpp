// results: the assets of a job's results.json (SPEC.md section 4, a STAC Item):
// a table of key, type, size and checksum; --name ASSET for one; --cat ASSET
// to stdout; --download DIR copies the files (or the one named) and checks
// each copy against its sha256 multihash. Files are found by their href,
// relative to the job folder; an href that leaves results/ is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "spool/fileio.h"
#include "spool/sha256.h"

namespace spoold::cli {
namespace {

// "%2F" -> "/"; the spool percent-encodes raw names in hrefs.
std::string PercentDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// A relative path with no "..", "." or empty parts, or nullopt.
std::optional<std::string> SafeRelative(const std::string& path) {
  if (path.empty() || path[0] == '/') return std::nullopt;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return std::nullopt;
    start = slash + 1;
  }
  return path;
}

struct Asset {
  std::string key;
  Json value;
};

std::string SourcePath(const Context& ctx, const std::string& id, const Asset& asset) {
  auto href = SafeRelative(PercentDecode(JsonString(asset.value, "href")));
  if (!href || href->rfind("results/", 0) != 0) return "";
  return ctx.Paths().JobDir(id) + "/" + *href;
}

// Streams `from` into `sink` and returns "1220" + its sha256, or an error.
Result<std::string> StreamFile(const std::string& from,
                               const std::function<bool(const char*, size_t)>& sink) {
  int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return MakeError("io_error", ErrnoMessage("open", from, errno));
  Sha256 hash;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return MakeError("io_error", ErrnoMessage("read", from, err));
    }
    if (n == 0) break;
    hash.Update(buf, static_cast<size_t>(n));
    if (!sink(buf, static_cast<size_t>(n))) {
      ::close(fd);
      return MakeError("io_error", "cannot write a copy of " + from);
    }
  }
  ::close(fd);
  auto digest = hash.Finish();
  return "1220" + ToHex(digest.data(), digest.size());
}

Status MakeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    if (auto st = EnsureDir(path.substr(0, slash)); !st.ok()) return st;
  }
  return OkStatus();
}

Status Download(const Context& ctx, const std::string& id, const Asset& asset, const std::string& dir) {
  const std::string from = SourcePath(ctx, id, asset);
  auto key = SafeRelative(asset.key);
  if (from.empty() || !key)
    return MakeError("io_error", "asset " + PrintableName(asset.key) + " has an unsafe path");
  const std::string to = dir + "/" + *key;
  if (auto st = MakeParents(to); !st.ok()) return st;
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0) return MakeError("io_error", ErrnoMessage("create", to, errno));
  auto sum = StreamFile(from, [&](const char* data, size_t size) {
    return ::write(out, data, size) == static_cast<ssize_t>(size);
  });
  ::close(out);
  if (!sum.ok()) return sum.error();
  const std::string expected = JsonString(asset.value, "file:checksum");
  if (*sum != expected) {
    ::unlink(to.c_str());
    return MakeError("checksum", PrintableName(asset.key) + ": checksum mismatch (results.json says " +
                                     expected + ", the file has " + *sum + "); the copy was removed");
  }
  if (!ctx.json) Out(to + "\n");
  return OkStatus();
}

Result<std::vector<Asset>> LoadAssets(const Context& ctx, const std::string& id, Json* item) {
  auto status = LoadStatusJson(ctx, id);
  if (!status.ok()) return status.error();
  if (!PathExists(ctx.Paths().ResultsJson(id))) {
    return MakeError("no_results", "job " + id + " has no results.json yet (it is " +
                                       JsonString(*status, "state", "?") +
                                       "; it is written when the job ends)");
  }
  auto doc = ReadJsonFile(ctx.Paths().ResultsJson(id));
  if (!doc.ok()) return doc.error();
  *item = std::move(doc.value());
  std::vector<Asset> assets;
  if (item->contains("assets") && (*item)["assets"].is_object()) {
    for (const auto& [key, value] : (*item)["assets"].items()) assets.push_back({key, value});
  }
  return assets;
}

void PrintAssets(const std::vector<Asset>& assets) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : assets) {
    const Json& size = a.value.value("file:size", Json(nullptr));
    rows.push_back({a.key, JsonString(a.value, "type", "-"),
                    size.is_number_integer() ? FormatSize(size.get<int64_t>()) : "-",
                    JsonString(a.value, "file:checksum", "-")});
  }
  PrintTable({"ASSET", "TYPE", "SIZE", "CHECKSUM"}, rows);
}

}  // namespace

int CmdResults(Context& ctx, const Args& args) {
  if (args.positional.size() != 1) return UsageError("give one job id");
  const std::string& id = args.positional[0];
  Json item;
  auto assets = LoadAssets(ctx, id, &item);
  if (!assets.ok()) return Fail(assets.error().message);
  auto name = args.Value("cat") ? args.Value("cat") : args.Value("name");
  if (name) {
    auto it = std::find_if(assets->begin(), assets->end(), [&](const Asset& a) { return a.key == *name; });
    if (it == assets->end()) return Fail("job " + id + " has no asset " + PrintableName(*name));
    *assets = {*it};
  }
  if (args.Value("cat")) {
    const std::string from = SourcePath(ctx, id, assets->front());
    if (from.empty()) return Fail("asset " + PrintableName(*name) + " has an unsafe href");
    auto sum = StreamFile(
        from, [](const char* data, size_t size) { return std::fwrite(data, 1, size, stdout) == size; });
    return sum.ok() ? kExitOk : Fail(sum.error().message);
  }
  if (auto dir = args.Value("download")) {
    int code = kExitOk;
    for (const auto& asset : *assets) {
      if (auto st = Download(ctx, id, asset, *dir); !st.ok()) code = Fail(st.error().message);
    }
    return code;
  }
  if (ctx.json) {
    if (name) {
      OutJson(ctx, Json{{name->c_str(), assets->front().value}});
    } else {
      OutJson(ctx, item);
    }
    return kExitOk;
  }
  PrintAssets(*assets);
  return kExitOk;
}

}  // namespace spoold::cli
