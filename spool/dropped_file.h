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
};

// Whether a name is final, i.e. may be read (not ".x", "x.tmp" or "x.part").
bool IsFinalName(const std::string& name);

// Reads `dir`/`name`. Errors: "vanished" (gone: not an error to report),
// "io_error" (try again later), or a rejection code of SPEC.md section 3:
// not_regular_file, unsupported_type, too_large.
Result<DroppedFile> ReadDroppedFile(const std::string& dir, const std::string& name, size_t max_size);

// The submitter check while jobs run as the daemon's own user: the file must be
// owned by that user, and when that user is root, root-owned files need
// security.allow_root. An error has code not_permitted.
Status CheckOwner(const std::string& name, uid_t file_uid, bool allow_root);

}  // namespace spoold
