// libFuzzer target: control requests (control/<name>.json or .toml). The body is shared with the unit
// test that replays the corpus (fuzz_targets.h).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spoold::fuzz::FuzzControl(data, size);
  return 0;
}
