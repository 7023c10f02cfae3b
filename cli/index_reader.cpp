#include "cli/index_reader.h"

#include <simdjson.h>

#include <algorithm>

namespace spoold::cli {
namespace {

namespace dom = simdjson::dom;

std::string StringField(const dom::object& entry, std::string_view key) {
  std::string_view value;
  return entry[key].get(value) == simdjson::SUCCESS ? std::string(value) : std::string();
}

}  // namespace

JobSummary SummaryOf(const std::string& id, Json json) {
  JobSummary s;
  s.id = id;
  auto text = [&json](const char* key) {
    auto it = json.find(key);
    return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (json.is_object()) {
    s.state = text("state");
    s.pool = text("pool");
    s.title = text("title");
    s.owner = text("owner");
    s.created = text("created");
    s.problem = text("problem");
    if (auto it = json.find("reason"); it != json.end() && !it->is_null()) {
      s.reason = it->is_string() ? it->get<std::string>() : DumpJson(*it);
    }
    if (auto it = json.find("attempt"); it != json.end() && it->is_number_integer())
      s.attempt = it->get<int64_t>();
    if (auto it = json.find("tags"); it != json.end() && it->is_array()) {
      for (const auto& tag : *it) {
        if (tag.is_string()) s.tags.push_back(tag.get<std::string>());
      }
    }
  }
  s.json = std::move(json);
  return s;
}

Result<IndexContent> ReadIndexFile(const std::string& path, bool with_jobs) {
  // The DOM parser: simdjson picks the fastest kernel for this processor at
  // run time (its On-Demand front end is built for the compiler's target).
  dom::parser parser;
  dom::element doc;
  if (auto error = parser.load(path).get(doc); error != simdjson::SUCCESS) {
    if (error == simdjson::IO_ERROR) return MakeError("io_error", "cannot read " + path);
    return MakeError("parse_error", path + " is not valid JSON (" + simdjson::error_message(error) + ")");
  }
  dom::object root;
  if (doc.get(root) != simdjson::SUCCESS) return MakeError("parse_error", path + " is not an object");
  IndexContent out;
  for (dom::key_value_pair field : root) {
    if (field.key != "jobs") {
      out.head[std::string(field.key)] = Json::parse(simdjson::minify(field.value), nullptr, false);
      continue;
    }
    dom::object jobs;
    if (!with_jobs || field.value.get(jobs) != simdjson::SUCCESS) continue;
    out.jobs.reserve(jobs.size());
    for (dom::key_value_pair job : jobs) {
      dom::object entry;
      if (job.value.get(entry) != simdjson::SUCCESS) continue;
      JobSummary s;
      s.id = std::string(job.key);
      s.state = StringField(entry, "state");
      s.pool = StringField(entry, "pool");
      s.title = StringField(entry, "title");
      s.owner = StringField(entry, "owner");
      s.created = StringField(entry, "created");
      dom::element reason;
      if (entry["reason"].get(reason) == simdjson::SUCCESS && !reason.is_null()) {
        std::string_view text;
        s.reason = reason.get(text) == simdjson::SUCCESS ? std::string(text) : simdjson::minify(reason);
      }
      int64_t attempt = 0;
      if (entry["attempt"].get(attempt) == simdjson::SUCCESS) s.attempt = attempt;
      dom::array tags;
      if (entry["tags"].get(tags) == simdjson::SUCCESS) {
        for (dom::element tag : tags) {
          std::string_view text;
          if (tag.get(text) == simdjson::SUCCESS) s.tags.emplace_back(text);
        }
      }
      out.jobs.push_back(std::move(s));
    }
  }
  std::sort(out.jobs.begin(), out.jobs.end(),
            [](const JobSummary& a, const JobSummary& b) { return a.id < b.id; });
  return out;
}

}  // namespace spoold::cli
