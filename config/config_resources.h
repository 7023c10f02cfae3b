// The configuration's resources (SPEC.md section 8): [machine] and the
// resource keys of [pools.*], read by config/config.cpp.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "config/toml.h"

namespace spoold::config_resources {

inline constexpr std::string_view kMachineKeys[] = {"cpus", "memory", "gpus"};
inline constexpr std::string_view kPoolResourceKeys[] = {"cpus",         "memory",         "gpus",
                                                         "default_cpus", "default_memory", "default_gpus"};

// "8 CPUs", "4G of memory", "1 GPU": `n` of resource `key`, for messages.
std::string DescribeAmount(std::string_view key, int64_t n);
// The same for what `capacity` has of `key`.
std::string Describe(const PoolCapacity& capacity, std::string_view key);

// Reads `key` of [pools.NAME] into `pool` if it is a resource key; nullopt if
// it is not one.
std::optional<Status> ReadPoolKey(const toml::key& key, const toml::node& node, const std::string& field,
                                  PoolConfig* pool);

// After every section is read: [machine] against the host (Host()), then
// each pool's capacity within the machine's and its defaults within its
// capacity. `root` is the parsed file, for the keys' lines.
Status Resolve(const toml::table& root, Config* config);

}  // namespace spoold::config_resources
