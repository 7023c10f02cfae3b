#include "cli/index_reader.h"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "spool/fileio.h"

namespace spoold::cli {
namespace {

namespace od = simdjson::ondemand;

// A JSON value's text as it is in the file (for a reason that is not a string).
std::string_view RawText(od::value& value) {
  std::string_view text;
  od::json_type type;
  if (value.type().get(type) != simdjson::SUCCESS) return text;
  if (type == od::json_type::object) {
    od::object object;
    if (value.get_object().get(object) == simdjson::SUCCESS &&
        object.raw_json().get(text) == simdjson::SUCCESS)
      return text;
  } else if (type == od::json_type::array) {
    od::array array;
    if (value.get_array().get(array) == simdjson::SUCCESS && array.raw_json().get(text) == simdjson::SUCCESS)
      return text;
  } else {
    text = value.raw_json_token();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
  }
  return {};
}

// A string as a view into the file itself when it has no escape (nearly
// always: then nothing is copied), else unescaped into the parser's buffer.
simdjson::error_code StringOf(od::value& value, std::string_view& out) {
  std::string_view token = value.raw_json_token();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.remove_suffix(1);
  if (token.size() >= 2 && token.front() == '"' && token.back() == '"' &&
      token.find('\\') == std::string_view::npos) {
    out = token.substr(1, token.size() - 2);
    return simdjson::SUCCESS;
  }
  return value.get_string().get(out);
}

// A key, the same way.
simdjson::error_code KeyOf(od::field& field, std::string_view& out) {
  const char* start = field.key().raw();
  const char* end = std::strchr(start, '"');  // the file is followed by zeros
  if (end != nullptr && std::memchr(start, '\\', static_cast<size_t>(end - start)) == nullptr) {
    out = std::string_view(start, static_cast<size_t>(end - start));
    return simdjson::SUCCESS;
  }
  return field.unescaped_key().get(out);
}

// One entry of "jobs"; its fields in any order, unknown ones skipped.
simdjson::error_code ReadEntry(od::object& entry, JobSummary& s) {
  for (auto field : entry) {
    od::raw_json_string key;
    if (auto error = field.key().get(key); error != simdjson::SUCCESS) return error;
    od::value value;
    if (auto error = field.value().get(value); error != simdjson::SUCCESS) return error;
    std::string_view* text = key == "state"     ? &s.state
                             : key == "pool"    ? &s.pool
                             : key == "title"   ? &s.title
                             : key == "owner"   ? &s.owner
                             : key == "created" ? &s.created
                                                : nullptr;
    if (text) {
      std::string_view got;
      if (StringOf(value, got) == simdjson::SUCCESS) *text = got;
    } else if (key == "reason") {
      bool null = false;
      if (value.is_null().get(null) == simdjson::SUCCESS && null) continue;
      std::string_view got;
      s.reason = StringOf(value, got) == simdjson::SUCCESS ? got : RawText(value);
    } else if (key == "attempt") {
      int64_t attempt = 0;
      if (value.get_int64().get(attempt) == simdjson::SUCCESS) s.attempt = attempt;
    } else if (key == "tasks") {
      od::object counts;
      std::string_view raw;
      if (value.get_object().get(counts) == simdjson::SUCCESS &&
          counts.raw_json().get(raw) == simdjson::SUCCESS)
        s.tasks = raw;
    } else if (key == "tags" || key == "after") {
      std::vector<std::string_view>& out = key == "tags" ? s.tags : s.after;
      od::array items;
      if (value.get_array().get(items) != simdjson::SUCCESS) continue;
      for (auto item : items) {
        od::value element;
        std::string_view got;
        if (std::move(item).get(element) == simdjson::SUCCESS && StringOf(element, got) == simdjson::SUCCESS)
          out.push_back(got);
      }
    }
  }
  return simdjson::SUCCESS;
}

// Finds where the root object's member "jobs" begins. It keeps its place
// between calls, so a file is scanned once as its chunks arrive.
class HeadScanner {
 public:
  // The offset of the key "jobs" at the root, or npos while not (yet) seen.
  size_t Scan(std::string_view text) {
    for (; pos_ < text.size(); ++pos_) {
      const char c = text[pos_];
      if (in_string_) {
        if (escaped_) {
          escaped_ = false;
        } else if (c == '\\') {
          escaped_ = true;
        } else if (c == '"') {
          in_string_ = false;
          if (key_start_ != std::string_view::npos &&
              text.substr(key_start_, pos_ + 1 - key_start_) == "\"jobs\"") {
            return key_start_;
          }
          key_start_ = std::string_view::npos;
        }
        continue;
      }
      switch (c) {
        case '"':
          in_string_ = true;
          if (depth_ == 1 && expect_key_) key_start_ = pos_;
          expect_key_ = false;
          break;
        case '{':
        case '[':
          ++depth_;
          expect_key_ = depth_ == 1 && c == '{';
          break;
        case '}':
        case ']':
          --depth_;
          break;
        case ',':
          expect_key_ = depth_ == 1;
          break;
        default:
          break;
      }
    }
    return std::string_view::npos;
  }

 private:
  size_t pos_ = 0;
  int depth_ = 0;
  bool in_string_ = false, escaped_ = false, expect_key_ = false;
  size_t key_start_ = std::string_view::npos;
};

}  // namespace

Result<Json> ReadIndexHead(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError("io_error", ErrnoMessage("open", path, errno));
  std::string text;
  HeadScanner scanner;
  size_t jobs_at = std::string::npos;
  constexpr size_t kChunk = 64 * 1024;
  while (jobs_at == std::string::npos) {
    const size_t had = text.size();
    text.resize(had + kChunk);
    const ssize_t n = ::read(fd, text.data() + had, kChunk);
    if (n < 0 && errno == EINTR) {
      text.resize(had);
      continue;
    }
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return MakeError("io_error", ErrnoMessage("read", path, err));
    }
    text.resize(had + static_cast<size_t>(n));
    if (n == 0) break;
    jobs_at = scanner.Scan(text);
  }
  ::close(fd);
  if (jobs_at != std::string::npos) {
    // `{"daemon": ..., "updated": "...", "jobs": ...`: the members before it, closed.
    text.resize(jobs_at);
    while (!text.empty() && (std::isspace(static_cast<unsigned char>(text.back())) || text.back() == ',')) {
      text.pop_back();
    }
    text.push_back('}');
  }
  Json head = Json::parse(text, nullptr, false);
  if (head.is_discarded()) return MakeError("parse_error", path + " is not valid JSON");
  if (!head.is_object()) return MakeError("parse_error", path + " is not an object");
  head.erase("jobs");
  return head;
}

struct SummaryStore::Index {
  // The file mapped read-only, followed by zeroed pages: simdjson reads up to
  // SIMDJSON_PADDING bytes past the end. index.json is replaced whole (a new
  // file takes its name), never rewritten in place, so the mapped file does
  // not change under us.
  void* base = MAP_FAILED;
  size_t reserved = 0;
  od::parser parser;
  od::document doc;

  ~Index() {
    if (base != MAP_FAILED) ::munmap(base, reserved);
  }
};

SummaryStore::SummaryStore() = default;
SummaryStore::~SummaryStore() = default;

std::string_view SummaryStore::Keep(std::string text) { return strings_.emplace_back(std::move(text)); }

JobSummary SummaryStore::SummaryOf(std::string id, Json json) {
  JobSummary s;
  s.id = Keep(std::move(id));
  auto text = [&](const char* key) {
    auto it = json.find(key);
    return it != json.end() && it->is_string() ? Keep(it->get<std::string>()) : std::string_view();
  };
  if (json.is_object()) {
    s.state = text("state");
    s.pool = text("pool");
    s.title = text("title");
    s.owner = text("owner");
    s.created = text("created");
    s.problem = text("problem");
    if (auto it = json.find("reason"); it != json.end() && !it->is_null()) {
      s.reason = Keep(it->is_string() ? it->get<std::string>() : DumpJson(*it));
    }
    if (auto it = json.find("attempt"); it != json.end() && it->is_number_integer())
      s.attempt = it->get<int64_t>();
    if (auto it = json.find("tags"); it != json.end() && it->is_array()) {
      for (const auto& tag : *it) {
        if (tag.is_string()) s.tags.push_back(Keep(tag.get<std::string>()));
      }
    }
    // status.json lists {job, on} tables, an index entry the ids.
    if (auto it = json.find("after"); it != json.end() && it->is_array()) {
      for (const auto& parent : *it) {
        const Json& parent_id = parent.is_object() ? parent.value("job", Json()) : parent;
        if (parent_id.is_string()) s.after.push_back(Keep(parent_id.get<std::string>()));
      }
    }
    if (auto it = json.find("tasks"); it != json.end() && it->is_object()) s.tasks = Keep(DumpJson(*it));
  }
  s.json = std::move(json);
  return s;
}

Result<std::vector<JobSummary>> SummaryStore::ReadIndexJobs(const std::string& path, Json& damaged) {
  SPOOLD_CHECK(!index_);
  index_ = std::make_unique<Index>();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MakeError("io_error", ErrnoMessage("open", path, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return MakeError("io_error", ErrnoMessage("stat", path, err));
  }
  const size_t length = static_cast<size_t>(st.st_size);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  index_->reserved = (length + simdjson::SIMDJSON_PADDING + page - 1) / page * page;
  index_->base = ::mmap(nullptr, index_->reserved, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (index_->base == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    return MakeError("io_error", ErrnoMessage("map", path, err));
  }
  if (length > 0 &&
      ::mmap(index_->base, length, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, 0) == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    return MakeError("io_error", ErrnoMessage("map", path, err));
  }
  ::close(fd);

  auto invalid = [&path](simdjson::error_code error) {
    return MakeError("parse_error", path + " is not valid JSON (" + simdjson::error_message(error) + ")");
  };
  const char* text = static_cast<const char*>(index_->base);
  if (auto error = index_->parser.iterate(text, length, index_->reserved).get(index_->doc); error)
    return invalid(error);
  od::object root;
  if (index_->doc.get_object().get(root) != simdjson::SUCCESS)
    return MakeError("parse_error", path + " is not an object");
  std::vector<JobSummary> jobs;
  for (auto field : root) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key); error) return invalid(error);
    if (key == "damaged") {
      od::object members;
      std::string_view raw;
      if (field.value().get_object().get(members) == simdjson::SUCCESS &&
          members.raw_json().get(raw) == simdjson::SUCCESS) {
        damaged = Json::parse(raw, nullptr, false);
      }
      continue;
    }
    if (key != "jobs") continue;  // the rest of the member is skipped
    od::object entries;
    if (field.value().get_object().get(entries) != simdjson::SUCCESS) continue;
    jobs.reserve(length / 256);  // an entry is about 300 bytes
    for (auto job : entries) {
      JobSummary s;
      od::field member;
      if (auto error = std::move(job).get(member); error) return invalid(error);
      if (auto error = KeyOf(member, s.id); error) return invalid(error);
      od::object entry;
      if (member.value().get_object().get(entry) != simdjson::SUCCESS) continue;
      // Its text (for list --json), then its fields from the start again.
      if (auto error = entry.raw_json().get(s.raw); error) return invalid(error);
      if (auto error = entry.reset().error(); error) return invalid(error);
      if (auto error = ReadEntry(entry, s); error) return invalid(error);
      jobs.push_back(std::move(s));
    }
  }
  auto by_id = [](const JobSummary& a, const JobSummary& b) { return a.id < b.id; };
  // Usually in order already (the daemon writes a rebuilt index by id).
  if (!std::is_sorted(jobs.begin(), jobs.end(), by_id)) std::sort(jobs.begin(), jobs.end(), by_id);
  return jobs;
}

}  // namespace spoold::cli
