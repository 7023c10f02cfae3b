// libcrypto reports failure of these calls only when it cannot allocate or its
// installation is broken (no provider offers SHA-256). Neither says anything
// about the data, and a checksum that silently differs would be worse than
// stopping, so a failure is treated like a broken invariant.
#include "spool/sha256.h"

#include <openssl/evp.h>

#include "config/result.h"

namespace spoold {

void Sha256::Free::operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  SPOOLD_CHECK(ctx_ != nullptr);
  SPOOLD_CHECK(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1);
}

void Sha256::Update(const void* data, size_t size) {
  if (size == 0) return;  // an empty update may come with a null pointer
  SPOOLD_CHECK(EVP_DigestUpdate(ctx_.get(), data, size) == 1);
}

std::array<uint8_t, 32> Sha256::Finish() {
  std::array<uint8_t, 32> digest;
  unsigned int length = 0;
  SPOOLD_CHECK(EVP_DigestFinal_ex(ctx_.get(), digest.data(), &length) == 1);
  SPOOLD_CHECK(length == digest.size());
  return digest;
}

std::string ToHex(const uint8_t* data, size_t size) {
  // Lower-case and without separators, as multihashes and sha256sum write it
  // (OpenSSL's OPENSSL_buf2hexstr writes upper case).
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * size, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0x0F];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  std::array<uint8_t, 32> digest;
  unsigned int length = 0;
  SPOOLD_CHECK(EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1);
  SPOOLD_CHECK(length == digest.size());
  return ToHex(digest.data(), digest.size());
}

}  // namespace spoold
