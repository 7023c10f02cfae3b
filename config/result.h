// Result<T>: the value of an operation that can fail in an expected way, or an
// Error saying why. std::expected is not in C++20; this is the small subset we
// need. Errors carry the machine code of SPEC.md section 3 (e.g. "invalid_field"),
// a sentence for people, and where known the field and the source position.
// A broken invariant is not an Error: it is a bug, checked with SPOOLD_CHECK.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace spoold {

struct Error {
  std::string code;     // a code from SPEC.md section 3, or "io_error", "config_error"
  std::string message;  // one sentence naming the problem; never quotes hostile content
  std::string field;    // dotted key ("retry.attempts") or empty
  int line = 0;         // 1-based; 0 when unknown
  int column = 0;       // 1-based; 0 when unknown
};

inline Error MakeError(std::string code, std::string message, std::string field = {},
                       int line = 0, int column = 0) {
  return Error{std::move(code), std::move(message), std::move(field), line, column};
}

struct Unit {};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : data_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return data_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(data_); }

 private:
  std::variant<T, Error> data_;
};

using Status = Result<Unit>;
inline Status OkStatus() { return Unit{}; }

[[noreturn]] inline void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "spoold: invariant broken: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace spoold

// A broken invariant is a bug: stop with file and line rather than go on wrong.
#define SPOOLD_CHECK(expr) \
  ((expr) ? (void)0 : ::spoold::CheckFailed(#expr, __FILE__, __LINE__))
