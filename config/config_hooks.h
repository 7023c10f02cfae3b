// Reading hooks from the configuration file (config/config.cpp calls these):
// the [hooks] section and a pool's [[pools.<name>.hooks]] tables, each error
// naming the field (pools.gpu.hooks[1].on), line and column.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "config/toml.h"

namespace spoold {

// [hooks]: max_running, user, allow_root, retention_wait.
Status ReadHooksSection(const toml::table& table, Config* config);

// `node`, the value of pools.<name>.hooks (`field`): an array of at most
// kMaxHooks hook tables.
Status ReadHookTables(const toml::node& node, const std::string& field, std::vector<HookSpec>* out);

// "pools.gpu.hooks[1]": the name of hook `index` of `section`, as errors show it.
std::string HookField(const std::string& section, size_t index);

}  // namespace spoold
