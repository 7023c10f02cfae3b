#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "config/config_fields.h"
#include "config/config_hooks.h"
#include "config/config_resources.h"
#include "config/toml.h"
#include "config/toml_safety.h"

namespace spoold {
namespace {

using namespace config_fields;

// Bounds of the numeric settings. They are wide enough for any real machine and
// narrow enough that a typo (an extra zero, a value in the wrong unit) is caught
// at start instead of surfacing later as a stuck or exhausted daemon.
constexpr int64_t kMinWorkers = 1;
constexpr int64_t kMaxWorkers = 4096;
constexpr int64_t kMinQueueLimit = 1;
constexpr int64_t kMaxQueueLimit = 10'000'000;
constexpr int64_t kMinJobFileSize = 1024;              // 1 KiB: smaller holds no real job
constexpr int64_t kMaxJobFileSize = 64 * 1024 * 1024;  // 64 MiB: job files are read whole
constexpr Millis kMinRescanInterval = std::chrono::milliseconds(100);
constexpr Millis kMaxRescanInterval = std::chrono::hours(1);
constexpr int64_t kMaxLargeIndexJobs = 10'000'000;
constexpr Millis kMinLargeIndexLag = std::chrono::seconds(1);
constexpr Millis kMaxLargeIndexLag = std::chrono::hours(1);

// A configuration file is trusted, but one larger than this is a mistake (the
// wrong path, a log file); refuse it rather than read it into memory.
constexpr off_t kMaxConfigFileSize = 1024 * 1024;

constexpr const char* kPoolNameRule =
    "must start with a letter or digit and hold at most 128 letters, digits, '.', "
    "'_' or '-'";

// The keys valid at each place of the file (SPEC section 8).
constexpr std::string_view kSections[] = {"spool", "defaults",     "job_environment", "retention", "security",
                                          "pools", "dependencies", "metrics",         "hooks",     "machine"};
constexpr std::string_view kSpoolKeys[] = {"root", "rescan_interval", "max_job_file_size", "large_index_jobs",
                                           "large_index_lag"};
constexpr std::string_view kDefaultsKeys[] = {"timeout"};
constexpr std::string_view kJobEnvironmentKeys[] = {"path", "lang"};
constexpr std::string_view kRetentionKeys[] = {"finished", "tombstones"};
constexpr std::string_view kSecurityKeys[] = {"allow_root"};
constexpr std::string_view kDependenciesKeys[] = {"missing_grace", "max_after"};
constexpr std::string_view kMetricsKeys[] = {"path", "interval"};
constexpr Millis kMinMetricsInterval = std::chrono::seconds(1);
constexpr Millis kMaxMetricsInterval = std::chrono::minutes(10);

constexpr std::string_view kPoolKeys[] = {
    "workers", "queue_limit", "paused", "auto_resume", "executor",     "timeout",        "slurm",
    "hooks",   "cpus",        "memory", "gpus",        "default_cpus", "default_memory", "default_gpus"};
constexpr std::string_view kSlurmKeys[] = {"partition", "sbatch_args"};

Status ReadSpool(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted("spool", key.str());
    Status s = OkStatus();
    if (key == "root") {
      s = ReadString(node, field, /*allow_empty=*/false, &config->root);
    } else if (key == "rescan_interval") {
      s = ReadDuration(node, field, kMinRescanInterval, kMaxRescanInterval,
                       &config->rescan_interval);
    } else if (key == "max_job_file_size") {
      s = ReadInteger(node, field, kMinJobFileSize, kMaxJobFileSize, &config->max_job_file_size);
    } else if (key == "large_index_jobs") {
      s = ReadInteger(node, field, 0, kMaxLargeIndexJobs, &config->large_index_jobs);
    } else if (key == "large_index_lag") {
      s = ReadDuration(node, field, kMinLargeIndexLag, kMaxLargeIndexLag, &config->large_index_lag);
    } else {
      return UnknownKey("spool", key, node, kSpoolKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

Status ReadDefaults(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    if (key != "timeout") return UnknownKey("defaults", key, node, kDefaultsKeys);
    // 0 means no limit, as for a job's own timeout.
    if (Status s = ReadDuration(node, "defaults.timeout", Millis(0), kMaxDuration,
                                &config->default_timeout);
        !s) {
      return s;
    }
  }
  return OkStatus();
}

Status ReadJobEnvironment(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted("job_environment", key.str());
    Status s = OkStatus();
    // Both may be empty: an empty PATH or LANG is odd but legal in an environment.
    if (key == "path") {
      s = ReadString(node, field, /*allow_empty=*/true, &config->job_path);
    } else if (key == "lang") {
      s = ReadString(node, field, /*allow_empty=*/true, &config->job_lang);
    } else {
      return UnknownKey("job_environment", key, node, kJobEnvironmentKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

Status ReadRetention(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    // 0 keeps finished jobs (or their tombstones) forever; any other duration
    // is a valid age.
    Millis* out = key == "finished"     ? &config->retention_finished
                  : key == "tombstones" ? &config->retention_tombstones
                                        : nullptr;
    if (out == nullptr) return UnknownKey("retention", key, node, kRetentionKeys);
    if (Status s = ReadDuration(node, Dotted("retention", key.str()), Millis(0), kMaxDuration, out); !s) {
      return s;
    }
  }
  return OkStatus();
}

Status ReadMetrics(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted("metrics", key.str());
    Status s = OkStatus();
    if (key == "path") {
      s = ReadString(node, field, /*allow_empty=*/false, &config->metrics_path);
      // node exporter's textfile collector reads only *.prom files.
      if (s && (config->metrics_path.size() < 6 ||
                config->metrics_path.compare(config->metrics_path.size() - 5, 5, ".prom") != 0 ||
                config->metrics_path.back() == '/')) {
        s = FieldError("invalid_field", field, node.source(),
                       field +
                           " must name a file ending in .prom (node exporter's textfile collector reads "
                           "only those)");
      }
    } else if (key == "interval") {
      s = ReadDuration(node, field, kMinMetricsInterval, kMaxMetricsInterval, &config->metrics_interval);
    } else {
      return UnknownKey("metrics", key, node, kMetricsKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

Status ReadDependencies(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted("dependencies", key.str());
    Status s = OkStatus();
    if (key == "missing_grace") {
      // 0: a parent not submitted yet is waited for without a limit.
      s = ReadDuration(node, field, Millis(0), kMaxDuration, &config->missing_grace);
    } else if (key == "max_after") {
      s = ReadInt(node, field, 1, kMaxAfterLimit, &config->max_after);
    } else {
      return UnknownKey("dependencies", key, node, kDependenciesKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

Status ReadSecurity(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    if (key != "allow_root") return UnknownKey("security", key, node, kSecurityKeys);
    if (Status s = ReadBool(node, "security.allow_root", &config->allow_root); !s) return s;
  }
  return OkStatus();
}

// [pools.NAME.slurm], also written as dotted keys (slurm.partition = ...) inside
// [pools.NAME]; toml++ gives both forms as the same nested table.
Status ReadSlurm(const toml::table& table, const std::string& prefix, SlurmPoolConfig* slurm) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted(prefix, key.str());
    if (key == "partition") {
      if (Status s = ReadString(node, field, /*allow_empty=*/true, &slurm->partition); !s) {
        return s;
      }
    } else if (key == "sbatch_args") {
      const auto* array = node.as_array();
      if (array == nullptr) {
        return FieldError("invalid_field", field, node.source(),
                          field + " must be an array of strings, got " + TypeName(node));
      }
      std::vector<std::string> args;
      for (size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const auto* text = element.as_string();
        if (text == nullptr) {
          return FieldError("invalid_field", field, element.source(),
                            field + " must be an array of strings, element " +
                                std::to_string(i + 1) + " is " + TypeName(element));
        }
        if (Status s = CheckNoNul(text->get(), field, element.source()); !s) return s;
        args.push_back(text->get());
      }
      slurm->sbatch_args = std::move(args);
    } else {
      return UnknownKey(prefix, key, node, kSlurmKeys);
    }
  }
  return OkStatus();
}

int DefaultWorkers() {
  // hardware_concurrency() may return 0 when it cannot tell.
  auto cpus = static_cast<int64_t>(std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp(cpus, kMinWorkers, kMaxWorkers));
}

PoolConfig DefaultPool(const std::string& name) {
  PoolConfig pool;
  pool.name = name;
  pool.workers = DefaultWorkers();
  return pool;
}

Status ReadPool(const toml::table& table, const std::string& prefix, PoolConfig* pool) {
  for (auto&& [key, node] : table) {
    std::string field = Dotted(prefix, key.str());
    if (std::optional<Status> read = config_resources::ReadPoolKey(key, node, field, pool)) {
      if (!*read) return *read;
      continue;
    }
    Status s = OkStatus();
    if (key == "workers") {
      s = ReadInt(node, field, kMinWorkers, kMaxWorkers, &pool->workers);
    } else if (key == "queue_limit") {
      s = ReadInt(node, field, kMinQueueLimit, kMaxQueueLimit, &pool->queue_limit);
    } else if (key == "paused") {
      s = ReadBool(node, field, &pool->paused);
    } else if (key == "auto_resume") {
      s = ReadBool(node, field, &pool->auto_resume);
    } else if (key == "executor") {
      const auto* text = node.as_string();
      if (text == nullptr || (text->get() != "local" && text->get() != "slurm")) {
        // The config file is trusted, so echoing the bad value helps more than it risks.
        std::string got = text == nullptr ? TypeName(node) : "\"" + text->get() + "\"";
        return FieldError("invalid_field", field, node.source(),
                          field + " must be \"local\" or \"slurm\", got " + got);
      }
      pool->executor = text->get();
    } else if (key == "timeout") {
      Millis timeout{};
      s = ReadDuration(node, field, Millis(0), kMaxDuration, &timeout);
      if (s) pool->timeout = timeout;
    } else if (key == "hooks") {
      s = ReadHookTables(node, field, &pool->hooks);
    } else if (key == "slurm") {
      // Slurm settings are kept on a local pool too, so that switching the
      // executor is a one-line change.
      const toml::table* slurm = nullptr;
      s = ReadTable(node, field, &slurm);
      if (s) s = ReadSlurm(*slurm, field, &pool->slurm);
    } else {
      return UnknownKey(prefix, key, node, kPoolKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

Status ReadPools(const toml::table& table, Config* config) {
  for (auto&& [key, node] : table) {
    std::string name(key.str());
    std::string field = Dotted("pools", name);
    if (!IsValidPoolName(name)) {
      return FieldError("invalid_field", field, key.source(),
                        "pool name \"" + name + "\" is not valid: it " + kPoolNameRule);
    }
    const toml::table* pool_table = nullptr;
    if (Status s = ReadTable(node, field, &pool_table); !s) return s;
    PoolConfig pool = DefaultPool(name);
    if (Status s = ReadPool(*pool_table, field, &pool); !s) return s;
    config->pools[name] = std::move(pool);
  }
  return OkStatus();
}

// A key of the file that is not valid at its place.
struct Unknown {
  std::string section;
  const toml::key* key;
  const toml::node* node;
  std::span<const std::string_view> known;
};

// Adds the keys of `table` not in `known`, the keys valid in `section`, to `out`.
void CollectUnknown(const toml::table& table, const std::string& section,
                    std::span<const std::string_view> known, std::vector<Unknown>* out) {
  for (auto&& [key, node] : table) {
    if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
      out->push_back({section, &key, &node, known});
    }
  }
}

// The unknown key written first anywhere in the file, sections, pools and
// their slurm tables included, so that a typo is reported before any error
// that may follow from it. A value that should be a table and is not is left
// to the readers to report.
std::optional<Error> FirstUnknownKey(const toml::table& root) {
  std::vector<Unknown> unknown;
  CollectUnknown(root, "", kSections, &unknown);
  const std::pair<std::string_view, std::span<const std::string_view>> sections[] = {
      {"spool", kSpoolKeys},
      {"defaults", kDefaultsKeys},
      {"job_environment", kJobEnvironmentKeys},
      {"retention", kRetentionKeys},
      {"security", kSecurityKeys},
      {"dependencies", kDependenciesKeys},
      {"metrics", kMetricsKeys},
      {"hooks", kHooksSectionKeys},
      {"machine", config_resources::kMachineKeys}};
  for (const auto& [name, keys] : sections) {
    if (const toml::table* table = root[name].as_table()) {
      CollectUnknown(*table, std::string(name), keys, &unknown);
    }
  }
  if (const toml::table* pools = root["pools"].as_table()) {
    for (auto&& [name, node] : *pools) {
      const toml::table* pool = node.as_table();
      if (pool == nullptr) continue;
      std::string section = Dotted("pools", name.str());
      CollectUnknown(*pool, section, kPoolKeys, &unknown);
      if (const toml::table* slurm = (*pool)["slurm"].as_table()) {
        CollectUnknown(*slurm, Dotted(section, "slurm"), kSlurmKeys, &unknown);
      }
      if (const toml::array* hooks = (*pool)["hooks"].as_array()) {
        for (size_t i = 0; i < hooks->size() && i < kMaxHooks; ++i) {
          if (const toml::table* hook = hooks->get(i)->as_table()) {
            CollectUnknown(*hook, HookField(section, i), kHookKeys, &unknown);
          }
        }
      }
    }
  }
  if (unknown.empty()) return std::nullopt;
  auto where = [](const Unknown& u) {
    const auto& begin = u.key->source().begin;
    return std::make_pair(begin.line, begin.column);
  };
  const Unknown& first = *std::min_element(
      unknown.begin(), unknown.end(), [&where](const auto& a, const auto& b) { return where(a) < where(b); });
  return UnknownKey(first.section, *first.key, *first.node, first.known);
}

// spool.root relative to the configuration file's folder (the working directory
// when there is no file), so that a config kept beside its spool works from any
// directory the daemon is started in. The folder need not exist yet.
// metrics.path is resolved the same way.
Status ResolvePath(const std::string& file_name, const char* field, std::string* path) {
  std::filesystem::path resolved(*path);
  if (resolved.is_relative()) {
    std::error_code ec;
    std::filesystem::path base = file_name.empty()
                                     ? std::filesystem::current_path(ec)
                                     : std::filesystem::absolute(file_name, ec).parent_path();
    if (ec) {
      return MakeError("config_error",
                       std::string("cannot resolve the relative ") + field + ": " + ec.message(), field);
    }
    resolved = base / resolved;
  }
  resolved = resolved.lexically_normal();
  // "/a/b/" normalizes to "/a/b/"; drop the trailing separator so that paths
  // built from the root look the same however it was written.
  if (!resolved.has_filename() && resolved.has_relative_path()) resolved = resolved.parent_path();
  *path = resolved.string();
  return OkStatus();
}

Status ResolveRoot(const std::string& file_name, Config* config) {
  if (Status s = ResolvePath(file_name, "spool.root", &config->root); !s) return s;
  if (config->metrics_path.empty()) return OkStatus();
  return ResolvePath(file_name, "metrics.path", &config->metrics_path);
}

}  // namespace

Millis Config::TimeoutFor(const std::string& pool) const {
  auto it = pools.find(pool);
  if (it != pools.end() && it->second.timeout) return *it->second.timeout;
  return default_timeout;
}

PoolCapacity Config::CapacityOf(const PoolConfig& pool) const {
  PoolCapacity capacity;
  if (pool.executor == "local") {
    capacity.cpus = pool.cpus.value_or(machine.cpus);
    capacity.memory = pool.memory.value_or(machine.memory);
    capacity.gpus = pool.gpus.value_or(machine.gpus);
    capacity.gpu_count = static_cast<int64_t>(capacity.gpus.size());
  } else {
    capacity.cpus = pool.cpus.value_or(PoolCapacity::kNoBound);
    capacity.memory = pool.memory.value_or(PoolCapacity::kNoBound);
    capacity.gpu_count = pool.gpus ? static_cast<int64_t>(pool.gpus->size()) : PoolCapacity::kNoBound;
  }
  return capacity;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  auto alnum = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

Result<Config> ParseConfig(const std::string& text, const std::string& file_name) {
  // toml++ crashes on some inputs rather than reporting them (config/toml.h), so
  // even a trusted file goes through the same gate as a job file.
  if (Status safe = CheckTomlSafety(text); !safe) return safe.error();

  toml::parse_result parsed = toml::parse(std::string_view(text), std::string_view(file_name));
  if (!parsed) {
    const toml::parse_error& e = parsed.error();
    return MakeError("parse_error", std::string(e.description()), "",
                     static_cast<int>(e.source().begin.line),
                     static_cast<int>(e.source().begin.column));
  }

  if (std::optional<Error> unknown = FirstUnknownKey(parsed.table())) return *unknown;

  Config config;
  config.source = file_name;
  for (auto&& [key, node] : parsed.table()) {
    std::string section(key.str());
    Status (*read)(const toml::table&, Config*) = nullptr;
    if (section == "spool") {
      read = ReadSpool;
    } else if (section == "defaults") {
      read = ReadDefaults;
    } else if (section == "job_environment") {
      read = ReadJobEnvironment;
    } else if (section == "retention") {
      read = ReadRetention;
    } else if (section == "security") {
      read = ReadSecurity;
    } else if (section == "pools") {
      read = ReadPools;
    } else if (section == "dependencies") {
      read = ReadDependencies;
    } else if (section == "metrics") {
      read = ReadMetrics;
    } else if (section == "hooks") {
      read = ReadHooksSection;
    } else if (section == "machine") {
      // Read once the pools are known (config_resources::Resolve).
      read = [](const toml::table&, Config*) { return OkStatus(); };
    } else {
      return UnknownKey("", key, node, kSections);
    }
    const toml::table* table = nullptr;
    if (Status s = ReadTable(node, section, &table); !s) return s.error();
    if (Status s = read(*table, &config); !s) return s.error();
  }

  if (config.pools.find("default") == config.pools.end()) {
    config.pools["default"] = DefaultPool("default");
  }
  if (Status s = config_resources::Resolve(parsed.table(), &config); !s) return s.error();
  if (Status s = ResolveRoot(file_name, &config); !s) return s.error();
  return config;
}

Result<Config> LoadConfig(const std::string& path) {
  auto io_error = [&path](const std::string& what) {
    return MakeError("io_error", "cannot read config file " + path + ": " + what);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(std::strerror(errno));
  // Closes the descriptor on every return below.
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return io_error("not a regular file");
  if (st.st_size > kMaxConfigFileSize) return io_error("larger than 1 MiB");

  std::string text;
  char buffer[16384];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    // The file may grow between fstat and here; keep the bound anyway.
    if (text.size() > static_cast<size_t>(kMaxConfigFileSize)) {
      return io_error("larger than 1 MiB");
    }
  }
  return ParseConfig(text, path);
}

std::string FormatConfigError(const Error& error, const std::string& file_name) {
  std::string out;
  if (!file_name.empty()) out += file_name + ":";
  if (error.line > 0) {
    out += std::to_string(error.line) + ":";
    if (error.column > 0) out += std::to_string(error.column) + ":";
  }
  if (!out.empty()) out += " ";
  // Messages from ParseConfig already start with the key ("pools.gpu.workers must
  // be ..."); saying it twice would only make the line harder to read.
  bool message_names_key =
      error.message.compare(0, error.field.size(), error.field) == 0 &&
      (error.message.size() == error.field.size() || error.message[error.field.size()] == ' ');
  if (!error.field.empty() && !message_names_key) out += error.field + ": ";
  out += error.message;
  return out;
}

}  // namespace spoold
