#include "spool/job_spec.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <exception>
#include <span>
#include <tuple>
#include <utility>

#include "config/closest_key.h"
#include "spool/field_checker.h"
#include "spool/job_resources.h"

namespace spoold {
namespace {

// The bounds in SPEC section 2's table. Priorities only order jobs, so a
// million steps either way is plenty, and a bound keeps arithmetic on them
// (sorting keys, aging) far from overflow. Backoff is capped because delay x backoff^n beyond
// 100 reaches max_delay after one or two retries anyway; an unbounded factor
// only invites overflow to infinity in the retry math.
constexpr int64_t kMinPriority = -1'000'000;
constexpr int64_t kMaxPriority = 1'000'000;
constexpr int64_t kMaxRetryAttempts = 100;
constexpr double kMinBackoff = 1.0;
constexpr double kMaxBackoff = 100.0;
constexpr int64_t kMinRetryExitCode = 1;
constexpr int64_t kMaxRetryExitCode = 255;
// Key names from the file are untrusted; this is how much of one a message shows.
constexpr size_t kMaxShownKeyLength = 64;

// The keys of SPEC section 2, in its table order, which is also the order in
// which they are checked (so the first error reported is predictable).
constexpr std::string_view kTopLevelKeys[] = {"command", "script",   "shell",    "title", "description",
                                              "tags",    "pool",     "priority", "cwd",   "env",
                                              "timeout", "deadline", "retry",    "kill",  "hold",
                                              "after",   "array",    "metadata", "hooks", "resources"};
constexpr std::string_view kRetryKeys[] = {"attempts",  "delay",      "backoff",
                                           "max_delay", "on_timeout", "exit_codes"};
constexpr std::string_view kKillKeys[] = {"signal", "grace"};

constexpr struct {
  std::string_view name;
  int number;
} kSignals[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"HUP", SIGHUP},   {"QUIT", SIGQUIT},
                {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM}};

constexpr std::string_view kReservedEnvPrefix = "SPOOLD_";

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool IsAsciiAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsAsciiAlnum(c) || c == '_'; });
}

std::string_view WithoutSigPrefix(std::string_view name) {
  return HasPrefix(name, "SIG") ? name.substr(3) : name;
}

const Json* Find(const Json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// A key of the file that is not in the schema at its place.
struct UnknownKey {
  std::string shown;    // the dotted field, printable
  std::string pos_key;  // the raw key path, to find its position
  std::string key;      // the raw key itself
  std::string prefix;   // owned: an after[i]. prefix is built for the call
  std::span<const std::string_view> known;  // the keys valid at its place
};

// Every key of `object` not in `known`.
void CollectUnknown(const Json& object, std::string_view prefix, std::span<const std::string_view> known,
                    std::vector<UnknownKey>* out) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string dotted(prefix);
    out->push_back({dotted + PrintableName(key, kMaxShownKeyLength), dotted + key, key, dotted, known});
  }
}

// The unknown key written first in the file, top-level and nested together;
// where positions are unknown (a Document built in code), keys keep the
// object's sorted order, top level before [retry] before [kill]. It names the
// key of the schema it is close to, if one is.
std::optional<Error> FirstUnknownKey(const Document& doc, const FieldChecker& check, int max_after) {
  const Json& top = doc.value;
  std::vector<UnknownKey> unknown;
  CollectUnknown(top, "", kTopLevelKeys, &unknown);
  // A [retry] or [kill] that is no table is reported by its own check.
  if (const Json* retry = Find(top, "retry"); retry != nullptr && retry->is_object()) {
    CollectUnknown(*retry, "retry.", kRetryKeys, &unknown);
  }
  if (const Json* kill = Find(top, "kill"); kill != nullptr && kill->is_object()) {
    CollectUnknown(*kill, "kill.", kKillKeys, &unknown);
  }
  if (const Json* array = Find(top, "array"); array != nullptr && array->is_object()) {
    CollectUnknown(*array, "array.", kArrayKeys, &unknown);
  }
  if (const Json* resources = Find(top, "resources"); resources != nullptr && resources->is_object()) {
    CollectUnknown(*resources, "resources.", kResourceKeys, &unknown);
  }
  // Only as many elements as an `after` may have: a longer list is refused
  // without reading it.
  if (const Json* after = Find(top, "after"); after != nullptr && after->is_array()) {
    for (size_t i = 0; i < after->size() && i < static_cast<size_t>(max_after); ++i) {
      if ((*after)[i].is_object()) {
        CollectUnknown((*after)[i], "after[" + std::to_string(i) + "].", kAfterKeys, &unknown);
      }
    }
  }
  // Only as many hook tables as a job may have (kMaxHooks), as for `after`.
  if (const Json* hooks = Find(top, "hooks"); hooks != nullptr && hooks->is_array()) {
    for (size_t i = 0; i < hooks->size() && i < kMaxHooks; ++i) {
      if ((*hooks)[i].is_object()) {
        CollectUnknown((*hooks)[i], "hooks[" + std::to_string(i) + "].", kHookKeys, &unknown);
      }
    }
  }
  if (unknown.empty()) return std::nullopt;
  auto order = [&doc](const UnknownKey& key) {
    SourcePos pos = doc.PositionOf(key.pos_key);
    return std::make_tuple(pos.line == 0, pos.line, pos.column);
  };
  std::stable_sort(unknown.begin(), unknown.end(),
                   [&order](const auto& a, const auto& b) { return order(a) < order(b); });
  const UnknownKey& first = unknown.front();
  std::string message = DidYouMean(first.shown, first.key, first.prefix, first.known)
                            .value_or(first.shown + " is not a known key of a job file");
  return check.Fail("unknown_field", first.shown, std::move(message), &first.pos_key);
}

std::string PoolList(const Config& config) {
  std::string out;
  for (const auto& [name, pool] : config.pools) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

bool IsJobKey(std::string_view key) {
  return std::find(std::begin(kTopLevelKeys), std::end(kTopLevelKeys), key) != std::end(kTopLevelKeys);
}

bool IsValidJobId(std::string_view id) { return IsValidName(id); }

std::optional<int> SignalFromName(std::string_view name) {
  std::string_view bare = WithoutSigPrefix(name);
  for (const auto& s : kSignals) {
    if (s.name == bare) return s.number;
  }
  return std::nullopt;
}

Result<JobSpec> ValidateJobSpec(const Document& doc, const std::string& id, const Config& config) {
  // Intake checks the id before it parses the file; checking again keeps this
  // function safe to call on its own, since the id becomes a folder name.
  if (!IsValidJobId(id)) {
    return MakeError("bad_id",
                     "the job id (the file name without .toml/.json) must match "
                     "[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  }
  SPOOLD_CHECK(doc.value.is_object());
  const Json& top = doc.value;
  FieldChecker check(doc);
  // Unknown keys first: a misspelt key is the mistake, and what it leads to (a
  // missing command, a default where a value was meant) only follows from it.
  if (std::optional<Error> unknown = FirstUnknownKey(doc, check, config.max_after)) return *unknown;

  JobSpec spec;
  spec.id = id;
  spec.title = id;

  // command / script: each checked for its type, then exactly one required.
  const Json* command = Find(top, "command");
  const Json* script = Find(top, "script");
  if (command != nullptr) {
    auto r = check.Strings("command", *command, /*argv=*/true);
    if (!r) return r.error();
    spec.command = std::move(*r);
  }
  if (script != nullptr) {
    auto r = check.String("script", *script, "a string", /*exec=*/true);
    if (!r) return r.error();
    spec.script = std::move(*r);
  }
  if (command == nullptr && script == nullptr) {
    return check.Fail("missing_field", "command",
                      "command is missing: a job needs exactly one of command and script");
  }
  if (command != nullptr && script != nullptr) {
    return check.Fail("invalid_field", "script",
                      "script cannot be given together with command: a job needs exactly one "
                      "of them");
  }

  if (const Json* v = Find(top, "shell")) {
    auto r = check.Strings("shell", *v, /*argv=*/true);
    if (!r) return r.error();
    spec.shell = std::move(*r);
  }
  if (const Json* v = Find(top, "title")) {
    auto r = check.String("title", *v, "a string", /*exec=*/false);
    if (!r) return r.error();
    spec.title = std::move(*r);
  }
  if (const Json* v = Find(top, "description")) {
    auto r = check.String("description", *v, "a string", /*exec=*/false);
    if (!r) return r.error();
    spec.description = std::move(*r);
  }
  if (const Json* v = Find(top, "tags")) {
    auto r = check.Strings("tags", *v, /*argv=*/false);
    if (!r) return r.error();
    spec.tags = std::move(*r);
  }
  if (const Json* v = Find(top, "pool")) {
    auto r = check.String("pool", *v, "a string naming a pool of the configuration", false);
    if (!r) return r.error();
    spec.pool = std::move(*r);
  }
  // Checked even when the job names no pool: a Config built without a "default"
  // pool must not let a job through to a scheduler that has nowhere to put it.
  if (config.pools.count(spec.pool) == 0) {
    return check.Fail("unknown_pool", "pool",
                      "pool must name a pool of the configuration (" + PoolList(config) + ")");
  }
  if (const Json* v = Find(top, "priority")) {
    auto r = check.Integer("priority", *v, kMinPriority, kMaxPriority);
    if (!r) return r.error();
    spec.priority = *r;
  }
  if (const Json* v = Find(top, "cwd")) {
    auto r = check.String("cwd", *v, "an absolute path", /*exec=*/true);
    if (!r) return r.error();
    if (r->empty() || (*r)[0] != '/') {
      return check.Fail("invalid_field", "cwd",
                        "cwd must be an absolute path (starting with /), got a relative one");
    }
    spec.cwd = std::move(*r);
  }
  if (const Json* v = Find(top, "env")) {
    if (auto r = check.Table("env", *v); !r) return r.error();
    for (const auto& [key, value] : v->items()) {
      std::string shown = "env." + PrintableName(key, kMaxShownKeyLength);
      std::string pos_key = "env." + key;
      if (!IsEnvName(key)) {
        return check.Fail("invalid_field", shown,
                          shown +
                              " is not a valid variable name: names match "
                              "[A-Za-z_][A-Za-z0-9_]*",
                          &pos_key);
      }
      if (HasPrefix(key, kReservedEnvPrefix)) {
        return check.Fail("invalid_field", shown,
                          shown + " is reserved: spoold sets the SPOOLD_* variables itself",
                          &pos_key);
      }
      // `shown` equals `key` here: a valid name has nothing PrintableName changes.
      auto s = check.String(shown, value, "a string", /*exec=*/true);
      if (!s) return s.error();
      spec.env.emplace(key, std::move(*s));
    }
  }
  // A zero timeout is kept as 0ms, meaning "no limit", which must stay distinct
  // from an absent timeout (nullopt: inherit the pool's). A zero deadline means
  // no deadline, exactly like an absent one, so both become nullopt.
  if (const Json* v = Find(top, "timeout")) {
    auto r = check.Duration("timeout", *v);
    if (!r) return r.error();
    spec.timeout = *r;
  }
  if (const Json* v = Find(top, "deadline")) {
    auto r = check.Duration("deadline", *v);
    if (!r) return r.error();
    if (r->count() > 0) spec.deadline = *r;
  }

  const Json* retry = Find(top, "retry");
  if (retry != nullptr) {
    if (auto r = check.Table("retry", *retry); !r) return r.error();
    if (const Json* v = Find(*retry, "attempts")) {
      auto r = check.Integer("retry.attempts", *v, 0, kMaxRetryAttempts);
      if (!r) return r.error();
      spec.retry.attempts = static_cast<int>(*r);
    }
    if (const Json* v = Find(*retry, "delay")) {
      auto r = check.Duration("retry.delay", *v);
      if (!r) return r.error();
      spec.retry.delay = *r;
    }
    if (const Json* v = Find(*retry, "backoff")) {
      auto r = check.Number("retry.backoff", *v, kMinBackoff, kMaxBackoff);
      if (!r) return r.error();
      spec.retry.backoff = *r;
    }
    if (const Json* v = Find(*retry, "max_delay")) {
      auto r = check.Duration("retry.max_delay", *v);
      if (!r) return r.error();
      spec.retry.max_delay = *r;
    }
    if (const Json* v = Find(*retry, "on_timeout")) {
      auto r = check.Bool("retry.on_timeout", *v);
      if (!r) return r.error();
      spec.retry.on_timeout = *r;
    }
    if (const Json* v = Find(*retry, "exit_codes")) {
      std::string rule = "an array of integers from " + std::to_string(kMinRetryExitCode) + " to " +
                         std::to_string(kMaxRetryExitCode);
      if (!v->is_array()) return check.Invalid("retry.exit_codes", rule, *v);
      for (size_t i = 0; i < v->size(); ++i) {
        auto r = check.Integer("retry.exit_codes[" + std::to_string(i) + "]", (*v)[i],
                               kMinRetryExitCode, kMaxRetryExitCode);
        if (!r) return r.error();
        spec.retry.exit_codes.push_back(static_cast<int>(*r));
      }
    }
  }

  const Json* kill = Find(top, "kill");
  if (kill != nullptr) {
    if (auto r = check.Table("kill", *kill); !r) return r.error();
    if (const Json* v = Find(*kill, "signal")) {
      constexpr std::string_view kRule =
          "a signal name: TERM, INT, HUP, QUIT, KILL, USR1, USR2 or ALRM, with or without SIG";
      auto r = check.String("kill.signal", *v, kRule, /*exec=*/false);
      if (!r) return r.error();
      std::optional<int> number = SignalFromName(*r);
      if (!number) {
        return check.Fail("invalid_field", "kill.signal",
                          "kill.signal must be " + std::string(kRule) + ", got another string");
      }
      spec.kill.signal_name = std::string(WithoutSigPrefix(*r));
      spec.kill.signal = *number;
    }
    if (const Json* v = Find(*kill, "grace")) {
      auto r = check.Duration("kill.grace", *v);
      if (!r) return r.error();
      spec.kill.grace = *r;
    }
  }

  if (const Json* v = Find(top, "hold")) {
    auto r = check.Bool("hold", *v);
    if (!r) return r.error();
    spec.hold = *r;
  }
  if (const Json* v = Find(top, "after")) {
    auto r = ValidateAfter(doc, *v, id, config.max_after);
    if (!r) return r.error();
    spec.after = std::move(*r);
  }
  if (const Json* v = Find(top, "array")) {
    auto r = ValidateArray(doc, *v);
    if (!r) return r.error();
    spec.array = std::make_shared<const ArraySpec>(std::move(*r));
  }
  if (const Json* v = Find(top, "metadata")) {
    if (auto r = check.Table("metadata", *v); !r) return r.error();
    // TOML has nan and inf; status.json, which shows metadata, is JSON and has neither.
    if (std::optional<std::string> at = FindNonFinite(*v)) {
      const std::string shown = "metadata." + PrintableName(*at, kMaxShownKeyLength);
      const std::string pos_key = "metadata." + *at;
      return check.Fail("invalid_field", shown,
                        shown +
                            " must not be nan or infinite: status.json shows metadata as JSON, which has "
                            "neither",
                        &pos_key);
    }
    spec.metadata = *v;
  }
  if (const Json* v = Find(top, "hooks")) {
    auto r = ValidateHooks(doc, *v);
    if (!r) return r.error();
    spec.hooks = std::move(*r);
  }
  {
    auto r = ValidateResources(check, Find(top, "resources"), spec.pool, config.pools.at(spec.pool), config);
    if (!r) return r.error();
    spec.resources = *r;
  }

  return spec;
}

Result<JobSpec> RevalidateJobSpec(const Document& doc, const std::string& id, const Config& config) {
  // dependencies.max_after limits what intake accepts: a job accepted before
  // the limit was lowered keeps its parents.
  Config kept = config;
  kept.max_after = kMaxAfterLimit;
  // A request a pool could give when the job was accepted is not refused
  // now: the job's status keeps the request it was accepted with.
  for (auto& [name, pool] : kept.pools) {
    pool.executor = "slurm";
    pool.cpus.reset();
    pool.memory.reset();
    pool.gpus.reset();
  }
  auto spec = ValidateJobSpec(doc, id, kept);
  if (spec.ok() || spec.error().code != "unknown_pool") return spec;
  PoolConfig orphan;
  orphan.name = doc.value.value("pool", "default");
  orphan.executor = "slurm";  // no bound on its request, as above
  kept.pools[orphan.name] = orphan;
  return ValidateJobSpec(doc, id, kept);
}

}  // namespace spoold
