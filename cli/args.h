// The command line of spoolctl: global options, the command table and per-command
// options, parsed the same way for every command ("--name value", "--name=value",
// a few short forms such as "-n 3", "--" ending the options). Pure: no I/O but
// the help text printed on request.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "config/result.h"

namespace spoold::cli {

struct OptionSpec {
  const char* name;        // long name without "--"
  char short_name;         // 0: none
  const char* value_name;  // nullptr: a flag without value
  const char* help;
  // The value may be left out: "--name" alone, "--name=VALUE", or "--name VALUE"
  // when the next word is not an option. Left out, the value is "".
  bool value_optional = false;
};

// What one command was given after parsing.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // options with values (last one wins)
  std::map<std::string, std::vector<std::string>> lists;  // every value of each, in order
  std::map<std::string, bool> flags;

  bool Flag(const std::string& name) const { return flags.count(name) > 0; }
  std::optional<std::string> Value(const std::string& name) const;
  // Every value an option was given, for options that may be repeated (-p).
  std::vector<std::string> List(const std::string& name) const;
};

using CommandFn = int (*)(Context& ctx, const Args& args);

enum class RootUse { kNone, kOptional, kRequired };

struct Command {
  const char* name;
  const char* synopsis;  // "FILE|- [--id ID]"
  const char* summary;   // one line
  const char* details;   // further paragraphs for `--help`, or ""
  std::vector<OptionSpec> options;
  CommandFn run;
  RootUse root = RootUse::kRequired;
};

// Options every command takes.
const std::vector<OptionSpec>& GlobalOptions();

// Parses `argv` (after the command name) against the command's and the global
// options. Errors name the bad argument.
Result<Args> ParseArgs(const Command& command, const std::vector<std::string>& argv);

// Help for one command, and for the whole program.
void PrintCommandHelp(const Command& command);
void PrintProgramHelp(const std::vector<Command>& commands);

// An integer argument in [min, max]; the error names the option.
Result<int64_t> ParseIntArg(const std::string& option, const std::string& text, int64_t min, int64_t max);

}  // namespace spoold::cli
