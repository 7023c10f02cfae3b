// "Did you mean": which key of a schema a misspelt key was most likely meant to
// be. Shared by job files, control requests and the configuration, so that a
// typo is reported the same way everywhere. Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace spoold {

// The optimal string alignment (restricted Damerau-Levenshtein) distance: the
// fewest insertions, deletions, substitutions and swaps of two neighbouring
// characters that turn `a` into `b`, each character edited at most once.
size_t KeyDistance(std::string_view a, std::string_view b);

// The key of `known` that `key` is closest to, when exactly one is close. Case
// and '-' against '_' do not count ("Max-Delay" is "max_delay"); otherwise
// close is a distance of at most 1 when either key has at most 4 characters, at
// most 2 otherwise. A tie for the closest suggests nothing.
std::optional<std::string_view> ClosestKey(std::string_view key, std::span<const std::string_view> known);

// "unknown key 'FIELD'; did you mean 'PREFIXCLOSEST'?" for the key `key`, shown
// as `field` (the caller's dotted, printable name) and valid keys `known` at
// its place, whose dotted names start with `prefix`; nullopt when no key is
// close.
std::optional<std::string> DidYouMean(std::string_view field, std::string_view key, std::string_view prefix,
                                      std::span<const std::string_view> known);

}  // namespace spoold
