// SHA-256 (FIPS 180-4), for the checksums of result files. Small and dependency
// free: the project's packages include no crypto library. Pure.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace spoold {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  std::array<uint8_t, 32> Finish();  // the object must not be used afterwards

 private:
  void Block(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string ToHex(const uint8_t* data, size_t size);
std::string Sha256Hex(std::string_view data);

}  // namespace spoold
