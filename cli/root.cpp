#include "cli/root.h"

#include <limits.h>
#include <stdlib.h>

#include <cstdlib>

#include "spool/fileio.h"

namespace spoold::cli {
namespace {

struct Candidate {
  std::string origin;  // how it was named, for messages
  std::string root;
};

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// Why `root` is not a spool, or "" when it is one.
std::string NotASpool(const std::string& root) {
  SpoolPaths paths(root);
  if (!PathExists(root)) return "it does not exist";
  if (PathExists(paths.Index())) return "";
  if (PathExists(paths.Jobs()) && PathExists(paths.Incoming())) return "";
  return "it has no jobs/ and incoming/ and no index.json";
}

Result<Config> Load(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) {
    return MakeError("config_error",
                     "cannot read the configuration: " + FormatConfigError(config.error(), path));
  }
  return config;
}

// The first source of a root that was given, loading configurations on the way.
Result<std::optional<Candidate>> PickCandidate(Context& ctx, const Args& args) {
  if (auto config_path = args.Value("config")) {
    auto config = Load(*config_path);
    if (!config.ok()) return config.error();
    ctx.config = std::move(config.value());
  }
  if (auto root = args.Value("root")) return std::optional<Candidate>(Candidate{"--root", *root});
  if (ctx.config) {
    return std::optional<Candidate>(Candidate{"spool.root of " + *args.Value("config"), ctx.config->root});
  }
  if (const char* env = std::getenv("SPOOLD_ROOT"); env != nullptr && *env != '\0') {
    return std::optional<Candidate>(Candidate{"$SPOOLD_ROOT", env});
  }
  if (PathExists(kDefaultConfigPath)) {
    auto config = Load(kDefaultConfigPath);
    if (!config.ok()) return config.error();
    ctx.config = std::move(config.value());
    return std::optional<Candidate>(
        Candidate{std::string("spool.root of ") + kDefaultConfigPath, ctx.config->root});
  }
  return std::optional<Candidate>();
}

// Without --config, the default configuration still describes the root's
// pools and defaults when it names the same root.
void AdoptDefaultConfig(Context& ctx, const std::string& root) {
  if (ctx.config || !PathExists(kDefaultConfigPath)) return;
  auto config = LoadConfig(kDefaultConfigPath);
  if (config.ok() && RealPath(config->root) == root) ctx.config = std::move(config.value());
}

}  // namespace

Status SetupRoot(Context& ctx, const Args& args, RootUse use) {
  if (use == RootUse::kNone) return OkStatus();
  auto candidate = PickCandidate(ctx, args);
  if (!candidate.ok()) return candidate.error();
  if (!candidate->has_value()) {
    if (use == RootUse::kOptional) return OkStatus();
    return MakeError("no_root", std::string("no spool root: tried --root, --config, $SPOOLD_ROOT and ") +
                                    kDefaultConfigPath + " (not found); name one with --root DIR");
  }
  const Candidate& found = **candidate;
  if (std::string why = NotASpool(found.root); !why.empty()) {
    if (use == RootUse::kOptional) return OkStatus();  // offline: the configuration is enough
    return MakeError("no_root", found.root + " (from " + found.origin + ") is not a spool: " + why);
  }
  const std::string root = RealPath(found.root);
  ctx.paths.emplace(root);
  ctx.root_origin = found.origin;
  AdoptDefaultConfig(ctx, root);
  return OkStatus();
}

}  // namespace spoold::cli
