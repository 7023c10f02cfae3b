// The fuzz targets' bodies, shared by the libFuzzer executables (tests/fuzz/
// fuzz_*.cpp, built with clang) and by the unit test that replays the seed corpus
// and every saved crash (tests/unit/fuzz_regressions_test.cpp, built with the main
// compiler under ASan and UBSan). Each function takes untrusted bytes, runs them
// through the same calls the daemon makes, writes every value and error it got
// with DumpJson (writing must never throw), and checks properties that must hold
// for any input. A broken property aborts, which libFuzzer reports as a crash
// with the input saved. No state, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spoold::fuzz {

void FuzzJobToml(const uint8_t* data, size_t size);     // incoming/<id>.toml
void FuzzJobJson(const uint8_t* data, size_t size);     // incoming/<id>.json
void FuzzConfigFile(const uint8_t* data, size_t size);  // spoold.toml
void FuzzControl(const uint8_t* data, size_t size);     // control/<name>.json and .toml
void FuzzStatus(const uint8_t* data, size_t size);      // jobs/<id>/status.json

}  // namespace spoold::fuzz
