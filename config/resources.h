// Resources (SPEC.md section 5, "Resources"): what a job asks for, what a pool
// or the machine has, sizes as written in files, and what this host offers.
// Pure but for DetectHost, which reads the host once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"

namespace spoold {

// An amount of each resource: a job's request (0: none of it), or counts.
struct ResourceAmounts {
  int64_t cpus = 0;
  int64_t memory = 0;  // bytes
  int64_t gpus = 0;
  bool Empty() const { return cpus == 0 && memory == 0 && gpus == 0; }
  // The amount of resource `key` ("cpus", "memory" or "gpus").
  int64_t Of(std::string_view key) const { return key == "cpus" ? cpus : key == "memory" ? memory : gpus; }
  bool operator==(const ResourceAmounts&) const = default;
};

// What one attempt was given: CPU numbers, GPU devices, and the memory it
// may use (0: no limit asked).
struct ResourceGrant {
  std::vector<int> cpus;
  std::vector<int> gpus;
  int64_t memory = 0;
  bool operator==(const ResourceGrant&) const = default;
};

inline constexpr int64_t kMaxCpus = 4096;
inline constexpr int64_t kMinMemory = int64_t{1} << 20;  // 1M
inline constexpr int64_t kMaxMemory = int64_t{1} << 50;  // 1P
inline constexpr int64_t kMaxGpus = 256;

// A size: an integer number of bytes as text ("4096"), or a number and a unit
// K, M, G, T, P (powers of 1024; "KiB", "KB" and "B" also taken, any case):
// "512M", "1.5G". nullopt when it is none; bounds are the caller's.
std::optional<int64_t> ParseSize(std::string_view text);
// The shortest exact way to write `bytes` ("4G", "1536M", "1000"), for messages.
std::string FormatSize(int64_t bytes);
inline constexpr const char* kSizeRule =
    "a size such as \"512M\", \"4G\" or a number of bytes (units K, M, G, T, P are powers of 1024)";

// What this host offers spoold: the CPUs it may run on (its affinity), its
// memory, and its NVIDIA devices.
struct HostFacts {
  std::vector<int> cpus;  // CPU numbers, ascending
  int64_t memory = 0;     // MemTotal, bytes
  std::vector<int> gpus;  // device indexes 0.. (/proc/driver/nvidia/gpus)
};
HostFacts DetectHost();
// The facts configurations are resolved against: detected once, or set by a
// test (SetHostFacts) before configurations are parsed.
const HostFacts& Host();
void SetHostFacts(HostFacts facts);

// "0,1,4": a list of CPU or device numbers as SPOOLD_CPUS and CUDA_VISIBLE_DEVICES take them.
std::string JoinNumbers(const std::vector<int>& numbers);

}  // namespace spoold
