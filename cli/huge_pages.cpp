// spoolctl reads index.json whole: with 100,000 jobs the JSON parser's buffers
// and the job summaries take about 100 MB of fresh memory, and faulting it in
// 4 KB pages took a third of `list`'s time (17,000 page faults). Blocks of 4 MB
// and more are asked for in transparent huge pages instead (madvise; Debian's
// kernels grant them in their default "madvise" mode): about 3,000 faults.
//
// This replaces the global operator new (the C++ standard's replaceable
// allocation function); new[] and the nothrow forms of libstdc++ end here (the
// aligned forms call aligned_alloc themselves), and every form of delete frees
// with free(), which takes both kinds of block.
// Not under AddressSanitizer, whose own operator new tracks each block.
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPOOLD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPOOLD_ASAN 1
#endif

#if !defined(SPOOLD_ASAN)

namespace {

constexpr std::size_t kHugePage = 2 << 20;
constexpr std::size_t kLarge = 4 << 20;

}  // namespace

void* operator new(std::size_t size) {
  // (Not near SIZE_MAX: rounding up would wrap around to a tiny block.)
  if (size >= kLarge && size <= SIZE_MAX - kHugePage) {
    const std::size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
    if (void* p = std::aligned_alloc(kHugePage, rounded)) {
      (void)::madvise(p, rounded, MADV_HUGEPAGE);  // advice: without it, small pages
      return p;
    }
  }
  while (true) {
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

#endif
