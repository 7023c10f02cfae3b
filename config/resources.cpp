#include "config/resources.h"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>
#include <optional>

namespace spoold {
namespace {

std::optional<HostFacts>& HostSlot() {
  static std::optional<HostFacts> facts;
  return facts;
}
std::mutex& HostMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

std::optional<int64_t> ParseSize(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  size_t end = text.size();
  while (end > i && (text[end - 1] == ' ' || text[end - 1] == '\t')) --end;
  text = text.substr(i, end - i);
  // The number: digits, at most one point, at most 9 digits after it.
  size_t n = 0;
  int64_t whole = 0;
  int64_t frac = 0;
  int frac_digits = 0;
  bool digits = false;
  while (n < text.size() && std::isdigit(static_cast<unsigned char>(text[n]))) {
    if (whole > (int64_t{1} << 53)) return std::nullopt;
    whole = whole * 10 + (text[n] - '0');
    digits = true;
    ++n;
  }
  if (n < text.size() && text[n] == '.') {
    ++n;
    while (n < text.size() && std::isdigit(static_cast<unsigned char>(text[n]))) {
      if (++frac_digits > 9) return std::nullopt;
      frac = frac * 10 + (text[n] - '0');
      digits = true;
      ++n;
    }
  }
  if (!digits) return std::nullopt;
  while (n < text.size() && (text[n] == ' ' || text[n] == '\t')) ++n;
  std::string unit;
  for (size_t k = n; k < text.size(); ++k) {
    unit += static_cast<char>(std::toupper(static_cast<unsigned char>(text[k])));
  }
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else {
    static constexpr std::string_view kUnits = "KMGTP";
    size_t at = kUnits.find(unit[0]);
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = std::string_view(unit).substr(1);
    if (!(rest.empty() || rest == "B" || rest == "IB")) return std::nullopt;
    shift = 10 * static_cast<int>(at + 1);
  }
  if (frac_digits > 0 && shift == 0) return std::nullopt;  // a fraction of a byte
  if (shift >= 60 || whole > (int64_t{1} << (62 - shift))) return std::nullopt;
  int64_t bytes = whole << shift;
  if (frac_digits > 0) {
    int64_t scale = 1;
    for (int k = 0; k < frac_digits; ++k) scale *= 10;
    // frac / scale of 2^shift bytes, rounded down to a byte: frac < 10^9 <
    // 2^30 and shift <= 50, so the unit is split to keep within 64 bits.
    const int low = shift > 30 ? shift - 30 : 0;
    bytes += static_cast<int64_t>(((static_cast<uint64_t>(frac) << (shift - low)) / scale) << low);
  }
  return bytes;
}

std::string FormatSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"K", "M", "G", "T", "P"};
  for (int k = 4; k >= 0; --k) {
    int64_t unit = int64_t{1} << (10 * (k + 1));
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + kUnits[k];
  }
  return std::to_string(bytes);
}

std::string JoinNumbers(const std::vector<int>& numbers) {
  std::string out;
  for (int n : numbers) {
    if (!out.empty()) out += ',';
    out += std::to_string(n);
  }
  return out;
}

HostFacts DetectHost() {
  HostFacts facts;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) facts.cpus.push_back(c);
    }
  }
  if (facts.cpus.empty()) facts.cpus.push_back(0);
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  while (meminfo >> key >> kb) {
    if (key == "MemTotal:") {
      facts.memory = kb * 1024;
      break;
    }
    meminfo.ignore(256, '\n');
  }
  if (facts.memory < kMinMemory) facts.memory = kMinMemory;
  // One folder per device, named by its PCI address: numbered in bus order,
  // as nvidia-smi and CUDA (with CUDA_DEVICE_ORDER=PCI_BUS_ID) number them.
  if (DIR* dir = opendir("/proc/driver/nvidia/gpus")) {
    int count = 0;
    while (struct dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    for (int g = 0; g < count && g < kMaxGpus; ++g) facts.gpus.push_back(g);
  }
  return facts;
}

const HostFacts& Host() {
  std::lock_guard<std::mutex> lock(HostMutex());
  if (!HostSlot()) HostSlot() = DetectHost();
  return *HostSlot();
}

void SetHostFacts(HostFacts facts) {
  std::lock_guard<std::mutex> lock(HostMutex());
  HostSlot() = std::move(facts);
}

}  // namespace spoold
