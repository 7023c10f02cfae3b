#include "spool/paths.h"

#include "spool/fileio.h"

namespace spoold {

SpoolPaths::SpoolPaths(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string SpoolPaths::JobFileName(DocFormat format) const {
  return format == DocFormat::kToml ? "job.toml" : "job.json";
}

Status SpoolPaths::EnsureLayout() const {
  // The root's parents are the operator's business; only the root itself and
  // its fixed folders are created here.
  for (const std::string& dir : {root_, Tmp(), Incoming(), Control(), Rejected(), Jobs()}) {
    if (auto st = EnsureDir(dir); !st.ok()) return st;
  }
  return OkStatus();
}

}  // namespace spoold
