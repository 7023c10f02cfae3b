#include "spool/job_array.h"

#include <algorithm>
#include <charconv>

#include "spool/job_spec.h"

namespace spoold {
namespace {

Error Fail(const Document& doc, const std::string& field, std::string message) {
  SourcePos pos = doc.PositionOf(field);
  return MakeError("invalid_field", std::move(message), field, pos.line, pos.column);
}

std::optional<int64_t> Number(std::string_view text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<int64_t> Limit(const Document& doc, const Json& table, const char* key) {
  auto it = table.find(key);
  if (it == table.end()) return int64_t{0};
  const std::string field = std::string("array.") + key;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxArrayLimit) {
    return Fail(doc, field,
                field + " must be an integer from 0 to " + std::to_string(kMaxArrayLimit) + ", got " +
                    (it->is_number_integer() ? std::to_string(it->get<int64_t>()) : it->type_name()));
  }
  return it->get<int64_t>();
}

}  // namespace

void ArraySpec::Seal() {
  starts.clear();
  starts.reserve(ranges.size());
  count = 0;
  for (const auto& r : ranges) {
    starts.push_back(count);
    count += r.Count();
  }
}

int64_t ArraySpec::IndexAt(uint64_t position) const {
  SPOOLD_CHECK(position < count && starts.size() == ranges.size());
  // The last range that starts at or before `position`.
  const size_t i =
      static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), position) - starts.begin()) - 1;
  return ranges[i].first + static_cast<int64_t>(position - starts[i]) * ranges[i].step;
}

std::optional<uint64_t> ArraySpec::PositionOf(int64_t index) const {
  SPOOLD_CHECK(starts.size() == ranges.size());
  // The first range that does not end before `index`: ranges ascend.
  auto it = std::lower_bound(ranges.begin(), ranges.end(), index,
                             [](const IndexRange& r, int64_t i) { return r.last < i; });
  if (it == ranges.end() || index < it->first || (index - it->first) % it->step != 0) return std::nullopt;
  return starts[static_cast<size_t>(it - ranges.begin())] +
         static_cast<uint64_t>((index - it->first) / it->step);
}

const std::string* ArraySpec::ItemOf(int64_t index) const {
  if (items.empty() || index < 0 || static_cast<uint64_t>(index) >= items.size()) return nullptr;
  return &items[static_cast<size_t>(index)];
}

Result<std::vector<IndexRange>> ParseIndexes(std::string_view text) {
  std::vector<IndexRange> out;
  uint64_t count = 0;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view part =
        Trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    const std::string shown = "'" + std::string(part.substr(0, 32)) + "'";
    IndexRange r;
    std::string_view span = part;
    if (size_t colon = part.find(':'); colon != part.npos) {
      auto step = Number(Trim(part.substr(colon + 1)));
      if (!step || *step < 1)
        return MakeError("invalid_field", shown + " has no step of 1 or more after ':'");
      r.step = *step;
      span = part.substr(0, colon);
    }
    if (size_t dash = span.find('-'); dash != span.npos) {
      auto first = Number(Trim(span.substr(0, dash)));
      auto last = Number(Trim(span.substr(dash + 1)));
      if (!first || !last) return MakeError("invalid_field", shown + " is not a range such as 5-9 or 5-9:2");
      if (*last < *first) return MakeError("invalid_field", shown + " ends before it begins");
      r.first = *first;
      // The last index the step reaches.
      r.last = *first + (*last - *first) / r.step * r.step;
    } else {
      auto one = Number(Trim(span));
      if (!one) {
        return MakeError("invalid_field",
                         part.empty()
                             ? std::string("has an empty element (two commas, or one at an end)")
                             : shown + " is not an index from 0 to " + std::to_string(kMaxArrayIndex));
      }
      if (r.step != 1) return MakeError("invalid_field", shown + " has a step but is no range");
      r.first = r.last = *one;
    }
    if (!out.empty() && r.first <= out.back().last) {
      return MakeError("invalid_field", shown + " does not come after " + std::to_string(out.back().last) +
                                            ": indexes ascend, each once");
    }
    count += r.Count();
    if (count > kMaxArrayTasks) {
      return MakeError("invalid_field", "names more than " + std::to_string(kMaxArrayTasks) + " tasks");
    }
    out.push_back(r);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string FormatIndexes(const std::vector<int64_t>& indexes) {
  std::string out;
  for (size_t i = 0; i < indexes.size();) {
    size_t j = i;
    while (j + 1 < indexes.size() && indexes[j + 1] == indexes[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(indexes[i]);
    if (j > i) out += '-' + std::to_string(indexes[j]);
    i = j + 1;
  }
  return out;
}

Result<ArraySpec> ValidateArray(const Document& doc, const Json& value) {
  if (!value.is_object())
    return Fail(doc, "array", std::string("array must be a table, got ") + value.type_name());
  ArraySpec spec;
  if (auto it = value.find("items"); it != value.end()) {
    if (!it->is_array() || it->empty()) {
      return Fail(doc, "array.items",
                  std::string("array.items must be a non-empty array of strings, got ") +
                      (it->is_array() ? "an empty array" : it->type_name()));
    }
    if (it->size() > kMaxArrayTasks) {
      return Fail(doc, "array.items",
                  "array.items has more than " + std::to_string(kMaxArrayTasks) + " items");
    }
    spec.items.reserve(it->size());
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& item = (*it)[i];
      const std::string field = "array.items[" + std::to_string(i) + "]";
      if (!item.is_string()) return Fail(doc, field, field + " must be a string, got " + item.type_name());
      if (item.get_ref<const std::string&>().find('\0') != std::string::npos) {
        return Fail(doc, field, field + " must not contain NUL: it reaches the environment");
      }
      spec.items.push_back(item.get<std::string>());
    }
  }
  if (auto it = value.find("indexes"); it != value.end()) {
    if (!it->is_string()) {
      return Fail(doc, "array.indexes",
                  std::string("array.indexes must be a string such as \"0-99\" or \"1,3,5-9:2\", got ") +
                      it->type_name());
    }
    auto ranges = ParseIndexes(it->get_ref<const std::string&>());
    if (!ranges.ok()) return Fail(doc, "array.indexes", "array.indexes " + ranges.error().message);
    spec.ranges = std::move(*ranges);
    if (!spec.items.empty() && spec.ranges.back().last >= static_cast<int64_t>(spec.items.size())) {
      return Fail(doc, "array.indexes",
                  "array.indexes picks item " + std::to_string(spec.ranges.back().last) +
                      ", but array.items has " + std::to_string(spec.items.size()) +
                      " (indexes count from 0)");
    }
  } else if (!spec.items.empty()) {
    spec.ranges.push_back({0, static_cast<int64_t>(spec.items.size()) - 1, 1});
  } else {
    SourcePos pos = doc.PositionOf("array");
    return MakeError("missing_field", "array needs indexes (such as \"0-99\") or items", "array.indexes",
                     pos.line, pos.column);
  }
  spec.Seal();
  auto parallel = Limit(doc, value, "parallel");
  if (!parallel.ok()) return parallel.error();
  spec.parallel = *parallel;
  auto max_failed = Limit(doc, value, "max_failed");
  if (!max_failed.ok()) return max_failed.error();
  spec.max_failed = *max_failed;
  return spec;
}

std::string TaskId(const std::string& array, int64_t index) { return array + ":" + std::to_string(index); }

std::optional<TaskRef> ParseTaskId(std::string_view id) {
  size_t colon = id.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view array = id.substr(0, colon);
  std::string_view digits = id.substr(colon + 1);
  if (!IsValidJobId(array) || digits.empty() || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  auto index = Number(digits);
  if (!index) return std::nullopt;
  return TaskRef{std::string(array), *index};
}

bool IsValidJobRef(std::string_view id) { return IsValidJobId(id) || ParseTaskId(id).has_value(); }

}  // namespace spoold
