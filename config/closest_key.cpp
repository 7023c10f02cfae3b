#include "config/closest_key.h"

#include <algorithm>
#include <vector>

namespace spoold {
namespace {

// How far two keys may be apart and still be suggested: one edit for short keys
// (a second edit in a 4-character key leaves too little of it), two otherwise.
size_t MaxDistance(size_t shorter_length) { return shorter_length <= 4 ? 1 : 2; }

// Lower case, '-' as '_': the differences a suggestion ignores.
std::string Normalized(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '-') c = '_';
  }
  return out;
}

}  // namespace

size_t KeyDistance(std::string_view a, std::string_view b) {
  // Three rows of the (|a|+1) x (|b|+1) table: the swap looks two rows back.
  const size_t width = b.size() + 1;
  std::vector<size_t> before(width), previous(width), current(width);
  for (size_t j = 0; j < width; ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j < width; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> ClosestKey(std::string_view key, std::span<const std::string_view> known) {
  const std::string wanted = Normalized(key);
  std::optional<std::string_view> best;
  size_t best_distance = 0;
  bool tie = false;
  for (std::string_view candidate : known) {
    const std::string name = Normalized(candidate);
    const size_t limit = MaxDistance(std::min(wanted.size(), name.size()));
    // The lengths alone rule most candidates out, and keep a long hostile key
    // from costing more than a glance.
    const size_t length_gap = std::max(wanted.size(), name.size()) - std::min(wanted.size(), name.size());
    if (length_gap > limit) continue;
    const size_t distance = KeyDistance(wanted, name);
    if (distance > limit) continue;
    if (!best || distance < best_distance) {
      best = candidate;
      best_distance = distance;
      tie = false;
    } else if (distance == best_distance) {
      tie = true;
    }
  }
  if (tie) return std::nullopt;
  return best;
}

std::optional<std::string> DidYouMean(std::string_view field, std::string_view key, std::string_view prefix,
                                      std::span<const std::string_view> known) {
  std::optional<std::string_view> closest = ClosestKey(key, known);
  if (!closest) return std::nullopt;
  return "unknown key '" + std::string(field) + "'; did you mean '" + std::string(prefix) +
         std::string(*closest) + "'?";
}

}  // namespace spoold
