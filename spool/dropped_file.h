// Reading a file that someone dropped into a spool folder (incoming/ or
// control/), where anything may be waiting: a symbolic link, a FIFO, a device, a
// folder, a huge or growing file. The entry is examined with lstat before it is
// opened (so nothing blocks and no device is touched), opened without following
// links, and its type, size and owner are taken from the open descriptor before
// a byte is read. Owns nothing; reads one file.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "config/result.h"
#include "spool/document.h"

namespace spoold {

struct DroppedFile {
  std::string bytes;
  DocFormat format = DocFormat::kToml;
  std::string stem;  // the name without .toml/.json
  uid_t uid = 0;
  gid_t gid = 0;
  nlink_t links = 1;
  dev_t dev = 0;  // which file it was: another dropped later under the same
  ino_t ino = 0;  // name is not it
};

// Whether a name is final, i.e. may be read (not ".x", "x.tmp" or "x.part").
bool IsFinalName(const std::string& name);

// Reads `dir`/`name`. Errors: "vanished" (gone: not an error to report),
// "io_error" (try again later), or a rejection code of SPEC.md section 3:
// not_regular_file, unsupported_type, too_large.
Result<DroppedFile> ReadDroppedFile(const std::string& dir, const std::string& name, size_t max_size);

// Who may submit (SPEC.md section 5). When spoold runs as root, any user may:
// the job runs as the file's owner, and root-owned files need
// security.allow_root. Otherwise spoold can run jobs only as itself, and the
// file must be its own. A file with more than one hard link is refused either
// way: a link is how another user's file could be planted in the drop folder.
// An error has code not_permitted.
Status CheckOwner(const std::string& name, const DroppedFile& file, bool allow_root);

// The hard-link part of CheckOwner alone (control requests have their own
// rule of who may act): not_permitted unless the file has exactly one link.
Status CheckSingleLink(const std::string& name, const DroppedFile& file);

}  // namespace spoold
