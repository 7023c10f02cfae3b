#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace spoold::cli {

std::optional<std::string> Args::Value(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Args::List(const std::string& name) const {
  auto it = lists.find(name);
  return it == lists.end() ? std::vector<std::string>() : it->second;
}

const std::vector<OptionSpec>& GlobalOptions() {
  static const std::vector<OptionSpec> kGlobal = {
      {"root", 0, "DIR", "the spool root (else --config's spool.root, $SPOOLD_ROOT, the default config's)"},
      {"config", 0, "FILE", "the daemon's configuration: its spool.root, pools and defaults"},
      {"no-color", 0, nullptr, "no colors even on a terminal (so does NO_COLOR)"},
      {"help", 'h', nullptr, "this help"},
  };
  return kGlobal;
}

namespace {

const OptionSpec* FindOption(const Command& command, const std::string& name, char short_name) {
  for (const auto* list : {&command.options, &GlobalOptions()}) {
    for (const auto& spec : *list) {
      if ((short_name == 0 && name == spec.name) || (short_name != 0 && short_name == spec.short_name)) {
        return &spec;
      }
    }
  }
  return nullptr;
}

}  // namespace

Result<Args> ParseArgs(const Command& command, const std::vector<std::string>& argv) {
  Args args;
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (options_done || arg == "-" || arg.empty() || arg[0] != '-') {
      args.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name;
    std::optional<std::string> inline_value;
    const OptionSpec* spec = nullptr;
    if (arg.rfind("--", 0) == 0) {
      name = arg.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      spec = FindOption(command, name, 0);
    } else if (arg.size() == 2) {
      spec = FindOption(command, "", arg[1]);
    }
    if (spec == nullptr) return MakeError("usage", "unknown option " + arg + " for " + command.name);
    if (spec->value_name == nullptr) {
      if (inline_value) return MakeError("usage", "option --" + std::string(spec->name) + " takes no value");
      args.flags[spec->name] = true;
      continue;
    }
    if (!inline_value && spec->value_optional) {
      const bool next_is_value = i + 1 < argv.size() && !argv[i + 1].empty() && argv[i + 1][0] != '-';
      inline_value = next_is_value ? argv[++i] : "";
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) {
        return MakeError("usage",
                         "option --" + std::string(spec->name) + " needs a value (" + spec->value_name + ")");
      }
      inline_value = argv[++i];
    }
    args.values[spec->name] = *inline_value;
    args.lists[spec->name].push_back(*inline_value);
  }
  return args;
}

namespace {

void PrintOptions(const std::vector<OptionSpec>& options) {
  for (const auto& spec : options) {
    std::string left = spec.short_name ? std::string("-") + spec.short_name + ", " : "    ";
    left += std::string("--") + spec.name;
    if (spec.value_name) {
      left += spec.value_optional ? std::string(" [") + spec.value_name + "]"
                                  : std::string(" ") + spec.value_name;
    }
    std::printf("  %-24s %s\n", left.c_str(), spec.help);
  }
}

}  // namespace

void PrintCommandHelp(const Command& command) {
  std::printf("usage: spoolctl %s %s\n\n%s\n", command.name, command.synopsis, command.summary);
  if (command.details[0] != '\0') std::printf("\n%s\n", command.details);
  if (!command.options.empty()) {
    std::printf("\noptions:\n");
    PrintOptions(command.options);
  }
  std::printf("\nglobal options:\n");
  PrintOptions(GlobalOptions());
}

void PrintProgramHelp(const std::vector<Command>& commands) {
  std::printf(
      "usage: spoolctl [--root DIR | --config FILE] COMMAND [ARGS...]\n"
      "\n"
      "The command-line client of spoold. It reads and writes the spool's files\n"
      "(no socket), so reading commands work without the daemon.\n"
      "\ncommands:\n");
  for (const auto& command : commands) std::printf("  %-12s %s\n", command.name, command.summary);
  std::printf("\nglobal options:\n");
  PrintOptions(GlobalOptions());
  std::printf(
      "\n"
      "The spool root is --root DIR, else --config FILE's spool.root, else $SPOOLD_ROOT,\n"
      "else the spool.root of %s.\n"
      "\n"
      "exit codes: 0 ok; 1 an error about the request (unknown id, bad file, refused);\n"
      "2 usage error. run and wait: 0 succeeded, the job's exit code when it exited\n"
      "non-zero, 124 timeout or deadline, 125 cancelled or any other failure.\n"
      "shutdown --wait: 124 when spoold still runs after the time given.\n"
      "\n"
      "A job id may name a task of an array (submit --array): ID:INDEX, as in sweep:7.\n"
      "\n"
      "`spoolctl COMMAND --help` describes one command. The files it reads and writes\n"
      "are specified in SPEC.md (docs/SPEC.md in the source, /usr/share/doc/spoold/\n"
      "SPEC.md when installed).\n",
      kDefaultConfigPath);
}

Result<int64_t> ParseIntArg(const std::string& option, const std::string& text, int64_t min, int64_t max) {
  errno = 0;
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
    return MakeError("usage", option + " must be an integer from " + std::to_string(min) + " to " +
                                  std::to_string(max) + ", got " + PrintableName(text));
  }
  return static_cast<int64_t>(value);
}

}  // namespace spoold::cli
