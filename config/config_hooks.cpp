#include "config/config_hooks.h"

#include "config/config_fields.h"

namespace spoold {
namespace {

using namespace config_fields;

// The user names useradd accepts, roughly: enough to refuse a typo with a
// space or a path, without judging what the passwd database holds (looked
// up when a hook runs).
bool IsUserName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return name[0] != '-';
}

Status ReadStrings(const toml::node& node, const std::string& field, bool allow_empty_array,
                   std::vector<std::string>* out) {
  const auto* array = node.as_array();
  if (array == nullptr || (!allow_empty_array && array->empty())) {
    return FieldError("invalid_field", field, node.source(),
                      field + " must be a non-empty array of strings, got " +
                          (array != nullptr ? std::string("an empty array") : TypeName(node)));
  }
  out->clear();
  for (size_t i = 0; i < array->size(); ++i) {
    const std::string element = field + "[" + std::to_string(i) + "]";
    std::string text;
    if (Status s = ReadString(*array->get(i), element, /*allow_empty=*/true, &text); !s) return s;
    out->push_back(std::move(text));
  }
  return OkStatus();
}

Status ReadHook(const toml::table& table, const std::string& field, HookSpec* hook) {
  for (const char* required : {"on", "command"}) {
    if (!table.contains(required)) {
      return FieldError("missing_field", field + "." + required, table.source(),
                        field + "." + required + " is missing: a hook needs on and command");
    }
  }
  for (auto&& [key, node] : table) {
    const std::string name = Dotted(field, key.str());
    Status s = OkStatus();
    if (key == "on") {
      if (node.is_string()) {
        std::string one;
        s = ReadString(node, name, /*allow_empty=*/false, &one);
        hook->on = {std::move(one)};
      } else {
        s = ReadStrings(node, name, /*allow_empty_array=*/false, &hook->on);
      }
      for (size_t i = 0; s && i < hook->on.size(); ++i) {
        const std::string& event = hook->on[i];
        if (event != "*" && !IsHookEvent(event)) {
          const toml::node& where = node.is_array() ? *node.as_array()->get(i) : node;
          s = FieldError(
              "invalid_field", node.is_array() ? name + "[" + std::to_string(i) + "]" : name, where.source(),
              name + " names \"" + event + "\", which is not an event hooks follow; known events: " +
                  HookEventList() + ", or \"*\" for all");
        }
      }
    } else if (key == "command") {
      s = ReadStrings(node, name, /*allow_empty_array=*/false, &hook->command);
      if (s && hook->command[0].empty()) {
        s = FieldError("invalid_field", name + "[0]", node.source(),
                       name + "[0] (the program) must not be empty");
      }
    } else if (key == "timeout") {
      s = ReadDuration(node, name, kMinHookTimeout, kMaxHookTimeout, &hook->timeout);
    } else if (key == "retries") {
      s = ReadInt(node, name, 0, kMaxHookRetries, &hook->retries);
    } else {
      return UnknownKey(field, key, node, kHookKeys);
    }
    if (!s) return s;
  }
  return OkStatus();
}

}  // namespace

std::string HookField(const std::string& section, size_t index) {
  return section + ".hooks[" + std::to_string(index) + "]";
}

Status ReadHookTables(const toml::node& node, const std::string& field, std::vector<HookSpec>* out) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return FieldError(
        "invalid_field", field, node.source(),
        field + " must be an array of tables (written [[" + field + "]]), got " + TypeName(node));
  }
  if (array->size() > kMaxHooks) {
    return FieldError("invalid_field", field, node.source(),
                      field + " has " + std::to_string(array->size()) + " hooks; at most " +
                          std::to_string(kMaxHooks) + " are allowed");
  }
  out->clear();
  for (size_t i = 0; i < array->size(); ++i) {
    const std::string element = field + "[" + std::to_string(i) + "]";
    const toml::table* table = nullptr;
    if (Status s = ReadTable(*array->get(i), element, &table); !s) return s;
    HookSpec hook;
    if (Status s = ReadHook(*table, element, &hook); !s) return s;
    out->push_back(std::move(hook));
  }
  return OkStatus();
}

Status ReadHooksSection(const toml::table& table, Config* config) {
  const toml::node* user = nullptr;
  for (auto&& [key, node] : table) {
    const std::string field = Dotted("hooks", key.str());
    Status s = OkStatus();
    if (key == "max_running") {
      s = ReadInt(node, field, 1, kMaxHooksRunning, &config->hooks.max_running);
    } else if (key == "user") {
      s = ReadString(node, field, /*allow_empty=*/false, &config->hooks.user);
      if (s && !IsUserName(config->hooks.user)) {
        s = FieldError("invalid_field", field, node.source(),
                       field + " must be a user name (letters, digits, '_', '-', '.'; at most 32)");
      }
      user = &node;
    } else if (key == "allow_root") {
      s = ReadBool(node, field, &config->hooks.allow_root);
    } else if (key == "retention_wait") {
      s = ReadDuration(node, field, Millis(0), kMaxDuration, &config->hooks.retention_wait);
    } else {
      return UnknownKey("hooks", key, node, kHooksSectionKeys);
    }
    if (!s) return s;
  }
  // Pool hooks run as this user for every job of the pool, whoever submitted
  // it: root only when it is asked for twice.
  if (user != nullptr && config->hooks.user == "root" && !config->hooks.allow_root) {
    return FieldError("invalid_field", "hooks.user", user->source(),
                      "hooks.user may be root only with hooks.allow_root = true: pool hooks run for every "
                      "user's jobs");
  }
  return OkStatus();
}

}  // namespace spoold
