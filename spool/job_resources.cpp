#include "spool/job_resources.h"

#include "config/config_resources.h"

namespace spoold {
namespace {

const Json* Find(const Json& object, std::string_view key) {
  auto it = object.find(std::string(key));
  return it == object.end() ? nullptr : &*it;
}

}  // namespace

Result<ResourceAmounts> ValidateResources(const FieldChecker& check, const Json* resources,
                                          const std::string& pool_name, const PoolConfig& pool,
                                          const Config& config) {
  ResourceAmounts want = pool.defaults;
  if (resources != nullptr) {
    if (auto r = check.Table("resources", *resources); !r) return r.error();
    if (const Json* v = Find(*resources, "cpus")) {
      auto r = check.Integer("resources.cpus", *v, 1, kMaxCpus);
      if (!r) return r.error();
      want.cpus = *r;
    }
    if (const Json* v = Find(*resources, "memory")) {
      std::optional<int64_t> size;
      if (v->is_number_integer()) {
        size = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(kMaxMemory) ? kMaxMemory + 1
                                                                                    : v->get<int64_t>();
      } else if (v->is_string()) {
        size = ParseSize(v->get_ref<const std::string&>());
      }
      if (!size) return check.Invalid("resources.memory", kSizeRule, *v);
      if (*size < kMinMemory || *size > kMaxMemory) {
        return check.Fail("invalid_field", "resources.memory", "resources.memory must be from 1M to 1P");
      }
      want.memory = *size;
    }
    if (const Json* v = Find(*resources, "gpus")) {
      auto r = check.Integer("resources.gpus", *v, 0, kMaxGpus);
      if (!r) return r.error();
      want.gpus = *r;
    }
  }
  const PoolCapacity capacity = config.CapacityOf(pool);
  if (const char* key = capacity.Over(want)) {
    const std::string field = std::string("resources.") + key;
    // Only the job's own keys can be over: the configuration keeps a pool's
    // defaults within its capacity.
    return check.Fail("invalid_field", field,
                      field + " asks for " + config_resources::DescribeAmount(key, want.Of(key)) +
                          "; pool \"" + pool_name + "\" has " + config_resources::Describe(capacity, key));
  }
  return want;
}

}  // namespace spoold
