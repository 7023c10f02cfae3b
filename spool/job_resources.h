// A job file's [resources] (SPEC.md section 5, "Resources"): checked, its
// pool's defaults applied, and bounded by what the pool could ever give.
// Pure: no state, no I/O.
#pragma once

#include "config/config.h"
#include "spool/document.h"
#include "spool/field_checker.h"

namespace spoold {

inline constexpr std::string_view kResourceKeys[] = {"cpus", "memory", "gpus"};

// The request of a job whose file holds `resources` (nullptr: none), in
// `pool`: its keys, else the pool's defaults. An error names the key, its
// line, and for a request over the pool's capacity, that capacity.
Result<ResourceAmounts> ValidateResources(const FieldChecker& check, const Json* resources,
                                          const std::string& pool_name, const PoolConfig& pool,
                                          const Config& config);

}  // namespace spoold
