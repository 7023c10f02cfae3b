// libFuzzer target: status.json read back at restart. The body is shared with the unit
// test that replays the corpus (fuzz_targets.h).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spoold::fuzz::FuzzStatus(data, size);
  return 0;
}
