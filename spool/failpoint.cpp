#include "spool/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

namespace spoold {

#ifdef SPOOLD_FAILPOINTS

namespace {

struct Armed {
  bool fail = false;  // report an error instead of dying
  bool stop = false;  // SIGSTOP instead of SIGKILL: a test acts, then SIGCONTs
  int at_hit = 1;
  int hits = 0;
};

// Parsed once from the environment: "name=kill[:N],name2=fail[:N],name3=stop[:N]".
std::map<std::string, Armed>& Table() {
  static std::map<std::string, Armed> table = [] {
    std::map<std::string, Armed> parsed;
    const char* spec = std::getenv("SPOOLD_FAILPOINTS");
    std::string text = spec ? spec : "";
    size_t pos = 0;
    while (pos < text.size()) {
      size_t comma = text.find(',', pos);
      if (comma == std::string::npos) comma = text.size();
      std::string item = text.substr(pos, comma - pos);
      pos = comma + 1;
      size_t eq = item.find('=');
      if (eq == std::string::npos) continue;
      std::string action = item.substr(eq + 1);
      Armed armed;
      armed.fail = action.rfind("fail", 0) == 0;
      armed.stop = action.rfind("stop", 0) == 0;
      const std::string verb = armed.fail ? "fail" : armed.stop ? "stop" : "kill";
      if (action.rfind(verb + ":", 0) == 0) {
        armed.at_hit = std::atoi(action.c_str() + 5);
      } else if (action != verb) {
        continue;
      }
      parsed[item.substr(0, eq)] = armed;
    }
    return parsed;
  }();
  return table;
}

}  // namespace

bool FailpointFails(const char* name) {
  auto& table = Table();
  auto it = table.find(name);
  if (it == table.end() || !it->second.fail) return false;
  return ++it->second.hits == it->second.at_hit;
}

void FailpointHit(const char* name) {
  auto& table = Table();
  auto it = table.find(name);
  if (it == table.end() || it->second.fail) return;
  if (++it->second.hits == it->second.at_hit) {
    // Say which point fired, then die the hardest way there is (or stop).
    static const char kPrefix[] = "spoold: failpoint ";
    ssize_t ignored = ::write(2, kPrefix, sizeof kPrefix - 1);
    ignored = ::write(2, name, std::char_traits<char>::length(name));
    ignored = ::write(2, " fired\n", 7);
    (void)ignored;
    ::kill(::getpid(), it->second.stop ? SIGSTOP : SIGKILL);
  }
}

bool FailpointsCompiledIn() { return true; }

#else

bool FailpointsCompiledIn() { return false; }

#endif

}  // namespace spoold
