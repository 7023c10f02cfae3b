// SHA-256 for the checksums of result files (and short name hashes), computed by
// libcrypto (OpenSSL 3, EVP interface): this module only adapts it to the
// project's types. Pure; no state beyond one digest in progress.
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace spoold {

// A digest fed in pieces, for files read in chunks.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t size);
  std::array<uint8_t, 32> Finish();  // the object must not be used afterwards

 private:
  struct Free {
    void operator()(EVP_MD_CTX* ctx) const;
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

std::string ToHex(const uint8_t* data, size_t size);
std::string Sha256Hex(std::string_view data);

}  // namespace spoold
