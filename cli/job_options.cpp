#include "cli/job_options.h"

#include "spool/job_array.h"

namespace spoold::cli {

void Settings::AssumePool(const Json& pool) {
  if (pools_known || !pool.is_string()) return;
  config.pools[pool.get<std::string>()].name = pool.get<std::string>();
}

Settings LoadSettings(const Context& ctx) {
  Settings s;
  if (ctx.config) {
    s.config = *ctx.config;
    s.source = "configuration " + ctx.config->source;
    s.config_known = true;
    return s;
  }
  s.config.pools.clear();
  if (ctx.paths) {
    auto index = ReadIndex(ctx);
    if (index.ok() && index->contains("pools") && (*index)["pools"].is_object()) {
      for (const auto& [name, pool] : (*index)["pools"].items()) {
        PoolConfig p;
        p.name = name;
        p.workers = pool.value("workers", 0);
        p.queue_limit = pool.value("queue_limit", 1000);
        p.paused = pool.value("paused", false);
        p.executor = pool.value("executor", "local");
        s.config.pools[name] = p;
      }
      s.source = "pools from " + ctx.Paths().Index() + " (no configuration: pool timeouts unknown)";
      return s;
    }
  }
  s.pools_known = false;
  s.source = "built-in defaults (no configuration and no index.json: the pool was not checked)";
  return s;
}

Result<Overrides> ParseOverrides(const Args& args) {
  Overrides ov;
  ov.pool = args.Value("pool");
  if (auto text = args.Value("priority")) {
    auto value = ParseIntArg("--priority", *text, INT64_MIN, INT64_MAX);
    if (!value.ok()) return value.error();
    ov.priority = *value;
  }
  ov.hold = args.Flag("hold");
  if (auto text = args.Value("after")) {
    size_t start = 0;
    while (start <= text->size()) {
      size_t comma = text->find(',', start);
      if (comma == std::string::npos) comma = text->size();
      std::string id = text->substr(start, comma - start);
      // A parent may be a task of an array (SPEC.md section 5).
      if (!IsValidJobRef(id)) {
        return MakeError("invalid_field",
                         "--after takes job ids (or task ids, ID:INDEX) separated by commas; \"" +
                             PrintableName(id) + "\" is not one");
      }
      ov.after.push_back(std::move(id));
      start = comma + 1;
    }
  }
  auto array = ParseArrayOptions(args);
  if (!array.ok()) return array.error();
  ov.array = std::move(array.value());
  return ov;
}

void ApplyOverrides(const Overrides& ov, Json& job) {
  if (ov.pool) job["pool"] = *ov.pool;
  if (ov.priority) job["priority"] = *ov.priority;
  if (ov.hold) job["hold"] = true;
  // Added to what the file names (a parent named twice is refused by validation).
  if (!ov.after.empty()) {
    if (!job.contains("after")) job["after"] = Json::array();
    for (const auto& id : ov.after) job["after"].push_back(id);
  }
  if (ov.derived_from) {
    if (!job.contains("metadata")) job["metadata"] = Json::object();
    if (job["metadata"].is_object()) job["metadata"]["derived_from"] = *ov.derived_from;
  }
  ApplyArrayOptions(ov.array, job);
}

}  // namespace spoold::cli
