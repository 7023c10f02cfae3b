#include "spool/paths.h"

#include "spool/fileio.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace spoold {

SpoolPaths::SpoolPaths(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string SpoolPaths::JobDir(const std::string& id) const {
  const size_t colon = id.find(':');
  if (colon == std::string::npos) return Jobs() + "/" + id;
  return TasksDir(id.substr(0, colon)) + "/" + id.substr(colon + 1);
}

std::string SpoolPaths::JobTmpDir(const std::string& id) const {
  const size_t colon = id.find(':');
  if (colon == std::string::npos) return Jobs() + "/." + id + ".tmp";
  return TasksDir(id.substr(0, colon)) + "/." + id.substr(colon + 1) + ".tmp";
}

std::string SpoolPaths::Script(const std::string& id) const {
  return Jobs() + "/" + id.substr(0, id.find(':')) + "/script";
}

std::string SpoolPaths::JobFileName(DocFormat format) const {
  return format == DocFormat::kToml ? "job.toml" : "job.json";
}

std::string SpoolPaths::RunFileName(DocFormat format) const {
  return format == DocFormat::kToml ? "run.toml" : "run.json";
}

std::string SpoolPaths::RevisionFile(const std::string& name, int revision, DocFormat format) const {
  return RevisionsDir(name) + "/" + std::to_string(revision) +
         (format == DocFormat::kJson ? ".json" : ".toml");
}

Status SpoolPaths::EnsureLayout() const {
  // SPEC.md section 1: missing folders are created at start, the root's
  // parents included.
  for (size_t slash = root_.find('/', 1); slash != std::string::npos; slash = root_.find('/', slash + 1)) {
    if (auto st = EnsureDir(root_.substr(0, slash)); !st.ok()) return st;
  }
  for (const std::string& dir : {root_, Tmp(), Incoming(), Control(), Rejected(), Jobs(), Definitions(),
                                 Revisions(), HooksPending()}) {
    if (auto st = EnsureDir(dir); !st.ok()) return st;
  }
  if (::geteuid() != 0) return OkStatus();
  const std::pair<std::string, mode_t> modes[] = {
      {root_, 0755},          {Jobs(), 0755},      {Rejected(), 0711},
      {Tmp(), 01733},         {Incoming(), 01733}, {Control(), 01733},
      {Definitions(), 01777}, {Revisions(), 0755}, {HooksPending(), 0755}};
  for (const auto& [dir, mode] : modes) {
    if (::chmod(dir.c_str(), mode) != 0) return MakeError("io_error", ErrnoMessage("chmod", dir, errno));
  }
  return OkStatus();
}

}  // namespace spoold
