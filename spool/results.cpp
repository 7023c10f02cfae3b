// results.json: the walk of a job's results/ folder and the STAC Item built from it.
//
// Decisions (see also spool/results.h):
// - Nothing under results/ is trusted: the job wrote it and may have planted
//   symbolic links, FIFOs, devices or names that are not UTF-8. Every step goes
//   through a folder descriptor with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so the walk
//   never leaves results/ and never opens anything it has not just seen as a
//   regular file; files are opened O_NONBLOCK so a FIFO swapped in after the stat
//   cannot block the daemon. Symbolic links and special files are not listed.
// - A file or folder that cannot be read (permissions, I/O error) is skipped and
//   named in properties "spoold:unlisted" (folders with a trailing "/"), so the
//   Item is still written for everything else; "spoold:unlisted_count" says how
//   many there were when the list itself is cut at kMaxUnlisted. A folder deeper
//   than kMaxDepth below results/ is treated the same way. Only failures that say
//   nothing about the files (out of descriptors or memory) and a results/ folder
//   that exists but cannot be opened fail the whole Item with "io_error": the
//   caller may try again later, and an Item silently missing files would be wrong.
// - An entry that vanishes or turns into a symbolic link during the walk is
//   simply not listed: the job changed its own results while it was being listed.
// - At most kMaxFiles files are listed and kMaxEntries folder entries examined;
//   beyond that the listing stops and properties carry "spoold:assets_truncated".
// - A file is hashed up to the size fstat reported when it was opened, so a file
//   still growing cannot keep the walk busy forever; "file:size" is the number of
//   bytes actually hashed, so size and checksum always describe the same bytes.
// - Asset keys are the paths relative to results/, made valid UTF-8 with
//   SanitizeUtf8; two different names that sanitize to the same key get "~2",
//   "~3", ... before the extension, assigned in byte order of the raw names after
//   every already valid name has kept its own key. The href percent-encodes the
//   raw bytes of the path (RFC 3986: everything except unreserved characters and
//   "/"), so it still finds the file when the key had to be changed and a name
//   holding "#", "?", "%" or spaces is not misread as a URL part.
// - Media types come from /etc/mime.types (spool/media_types.h) by lower-cased
//   extension, except .tif/.tiff (kStacMediaTypes). Extensions it does not list
//   are application/octet-stream, and so is every file when it cannot be read.
#include "spool/results.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "spool/media_types.h"
#include "spool/sha256.h"

namespace spoold {

namespace {

constexpr int kMaxDepth = 64;             // folder levels below results/
constexpr size_t kMaxFiles = 100000;      // assets listed
constexpr size_t kMaxEntries = 1000000;   // folder entries examined, of any kind
constexpr size_t kMaxUnlisted = 1000;     // names kept in "spoold:unlisted"
constexpr size_t kChunkSize = 64 * 1024;  // read size while hashing

constexpr const char* kFileExtension = "https://stac-extensions.github.io/file/v2.1.0/schema.json";
// Multihash prefix for sha2-256: function code 0x12, digest length 0x20.
constexpr const char* kSha256Multihash = "1220";
constexpr std::string_view kDefaultMediaType = "application/octet-stream";

// Where results.json deliberately differs from /etc/mime.types (which says plain
// image/tiff): .tif/.tiff are labelled "image/tiff; application=geotiff", the type
// STAC best practices and openEO use for GeoTIFF, because geospatial results are
// the main use of results.json and clients choose their reader by it; a plain
// TIFF is still a TIFF to them.
constexpr std::pair<std::string_view, std::string_view> kStacMediaTypes[] = {
    {"tif", "image/tiff; application=geotiff"},
    {"tiff", "image/tiff; application=geotiff"},
};

// Types of results jobs write every day that Debian 12's /etc/mime.types does
// not list; results.json named them before it read that file, and a client
// that chose its reader by them would otherwise see application/octet-stream.
// Used only where /etc/mime.types has no entry. (YAML's type is registered by
// RFC 9512, Parquet's and HDF5's are what STAC best practices name.)
constexpr std::pair<std::string_view, std::string_view> kFallbackMediaTypes[] = {
    {"log", "text/plain"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"toml", "application/toml"},
    {"parquet", "application/vnd.apache.parquet"},
    {"h5", "application/x-hdf5"},
    {"hdf5", "application/x-hdf5"},
};

// Running out of descriptors or memory says nothing about the file at hand, so
// skipping it would give an Item that is silently incomplete.
bool IsResourceError(int err) { return err == EMFILE || err == ENFILE || err == ENOMEM; }

// The entry disappeared, or became a symbolic link (O_NOFOLLOW gives ELOOP) or a
// non-folder, between the listing and the open: the job changed it under us.
bool ChangedUnderUs(int err) { return err == ENOENT || err == ELOOP || err == ENOTDIR; }

Error IoError(const std::string& what, const std::string& path, int err) {
  return MakeError("io_error",
                   "cannot " + what + " '" + PrintableName(path, 200) + "': " + std::strerror(err));
}

// How a folder is named in "spoold:unlisted": its path with a trailing "/";
// results/ itself is "./".
std::string FolderLabel(const std::string& prefix) { return prefix.empty() ? "./" : prefix + "/"; }

struct FoundFile {
  std::string path;  // raw bytes, relative to results/, '/'-separated
  uint64_t size = 0;
  std::string sha256_hex;
};

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

class Walker {
 public:
  Walker() : chunk_(kChunkSize) {}

  // Takes ownership of `dir_fd`, an open results/ folder (or a folder below it).
  Status Walk(int dir_fd, const std::string& prefix, int depth) {
    DirPtr dir(fdopendir(dir_fd));
    if (!dir) {
      int err = errno;
      close(dir_fd);
      return Skip(FolderLabel(prefix), "list", err);
    }

    // Names are read first and sorted so the walk, and therefore which files are
    // left out once a limit is hit, does not depend on the file system's order.
    std::vector<std::string> names;
    errno = 0;
    while (dirent* entry = readdir(dir.get())) {
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      if (entries_ >= kMaxEntries) {
        truncated_ = true;
        break;
      }
      ++entries_;
      names.emplace_back(name);
      errno = 0;
    }
    if (errno != 0 && !truncated_) {
      // Keep what was read; the folder is named as only partly listed.
      if (Status s = Skip(FolderLabel(prefix), "list", errno); !s.ok()) return s;
    }
    std::sort(names.begin(), names.end());

    int fd = dirfd(dir.get());
    for (const std::string& name : names) {
      if (truncated_) break;
      std::string path = prefix.empty() ? name : prefix + "/" + name;
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (Status s = Skip(path, "inspect", errno); !s.ok()) return s;
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (depth + 1 > kMaxDepth) {
          Unlist(path + "/");
          continue;
        }
        int sub = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          if (Status s = Skip(path + "/", "open folder", errno); !s.ok()) return s;
          continue;
        }
        if (Status s = Walk(sub, path, depth + 1); !s.ok()) return s;
      } else if (S_ISREG(st.st_mode)) {
        if (files_.size() >= kMaxFiles) {
          truncated_ = true;
          break;
        }
        if (Status s = HashFile(fd, name, path); !s.ok()) return s;
      }
      // Symbolic links, FIFOs, sockets and devices are not results.
    }
    return OkStatus();
  }

  std::vector<FoundFile>& files() { return files_; }
  std::vector<std::string>& unlisted() { return unlisted_; }
  size_t unlisted_count() const { return unlisted_count_; }
  bool truncated() const { return truncated_; }

 private:
  Status HashFile(int dir_fd, const std::string& name, const std::string& path) {
    int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return Skip(path, "open", errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return Skip(path, "inspect", err);
    }
    if (!S_ISREG(st.st_mode)) {  // swapped for something else since the fstatat
      close(fd);
      return OkStatus();
    }
    Sha256 hash;
    uint64_t remaining = static_cast<uint64_t>(st.st_size);
    uint64_t total = 0;
    while (remaining > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, chunk_.size()));
      ssize_t n = read(fd, chunk_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        close(fd);
        return Skip(path, "read", err);
      }
      if (n == 0) break;  // shrank since the fstat: hash what is there
      hash.Update(chunk_.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
      remaining -= static_cast<uint64_t>(n);
    }
    close(fd);
    auto digest = hash.Finish();
    files_.push_back(FoundFile{path, total, ToHex(digest.data(), digest.size())});
    return OkStatus();
  }

  // Decides what a failed call on `path` means: nothing (it changed under us), a
  // failure of the whole walk (resources), or an entry left out and named.
  Status Skip(const std::string& path, const char* what, int err) {
    if (ChangedUnderUs(err)) return OkStatus();
    if (IsResourceError(err)) return IoError(what, "results/" + path, err);
    Unlist(path);
    return OkStatus();
  }

  void Unlist(std::string path) {
    ++unlisted_count_;
    if (unlisted_.size() < kMaxUnlisted) unlisted_.push_back(std::move(path));
  }

  std::vector<char> chunk_;
  std::vector<FoundFile> files_;
  std::vector<std::string> unlisted_;
  size_t unlisted_count_ = 0;
  size_t entries_ = 0;
  bool truncated_ = false;
};

// RFC 3986 percent-encoding of a relative path: unreserved characters and the
// "/" separators stay, every other byte (including non-ASCII) becomes %XX.
std::string PercentEncodePath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (char ch : path) {
    unsigned char c = static_cast<unsigned char>(ch);
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '.' || c == '_' || c == '~' || c == '/';
    if (keep) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    }
  }
  return out;
}

// `key` with "~n" before the extension of its last path segment ("a/b.txt" ->
// "a/b~2.txt"); a leading dot is not an extension (".env" -> ".env~2").
std::string WithSuffix(const std::string& key, size_t n) {
  size_t segment = key.rfind('/');
  segment = segment == std::string::npos ? 0 : segment + 1;
  size_t dot = key.rfind('.');
  std::string suffix(1, '~');
  suffix += std::to_string(n);
  if (dot == std::string::npos || dot <= segment) return key + suffix;
  return key.substr(0, dot) + suffix + key.substr(dot);
}

// Asset keys in the order of `files` (sorted by raw path): valid UTF-8 paths keep
// themselves; the others get their sanitized form, made unique if needed.
std::vector<std::string> AssetKeys(const std::vector<FoundFile>& files) {
  std::vector<std::string> keys(files.size());
  std::vector<size_t> to_sanitize;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string clean = SanitizeUtf8(files[i].path);
    if (clean == files[i].path) {
      keys[i] = std::move(clean);
    } else {
      to_sanitize.push_back(i);
    }
  }
  if (to_sanitize.empty()) return keys;  // the common case needs no set of 100000 keys
  std::set<std::string> taken;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!keys[i].empty()) taken.insert(keys[i]);
  }
  for (size_t i : to_sanitize) {
    std::string base = SanitizeUtf8(files[i].path);
    std::string key = base;
    for (size_t n = 2; taken.count(key) != 0; ++n) key = WithSuffix(base, n);
    taken.insert(key);
    keys[i] = std::move(key);
  }
  return keys;
}

}  // namespace

std::string MediaTypeFor(const std::string& file_name, const MediaTypeTable& table) {
  std::string_view name = file_name;
  if (size_t slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  size_t dot = name.rfind('.');
  // No dot, or only a leading one (".json" is a hidden file named json, not JSON).
  if (dot == std::string_view::npos || dot == 0) return std::string(kDefaultMediaType);
  std::string extension(name.substr(dot + 1));
  for (char& c : extension) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  for (const auto& [stac_extension, media_type] : kStacMediaTypes) {
    if (extension == stac_extension) return std::string(media_type);
  }
  std::string_view found = table.Find(extension);
  if (!found.empty()) return std::string(found);
  for (const auto& [fallback_extension, media_type] : kFallbackMediaTypes) {
    if (extension == fallback_extension) return std::string(media_type);
  }
  return std::string(kDefaultMediaType);
}

Result<Json> BuildResultsItem(const std::string& job_dir, const ResultsInfo& info) {
  SPOOLD_CHECK(!info.job_id.empty());
  Walker walker;
  std::string results_dir = job_dir + "/results";
  int root = open(results_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root >= 0) {
    if (Status s = walker.Walk(root, "", 0); !s.ok()) return s.error();
  } else if (!ChangedUnderUs(errno)) {
    // Missing, a symbolic link or not a folder: no results (ChangedUnderUs covers
    // exactly ENOENT, ELOOP, ENOTDIR). Anything else means the folder is there
    // but unreadable, and an empty Item would wrongly claim there are no results.
    return IoError("open results folder", results_dir, errno);
  }

  std::vector<FoundFile>& files = walker.files();
  std::sort(files.begin(), files.end(),
            [](const FoundFile& a, const FoundFile& b) { return a.path < b.path; });
  std::vector<std::string> keys = AssetKeys(files);

  Json assets = Json::object();
  for (size_t i = 0; i < files.size(); ++i) {
    assets[keys[i]] = Json{{"href", "results/" + PercentEncodePath(files[i].path)},
                           {"type", MediaTypeFor(files[i].path)},
                           {"roles", Json::array({"data"})},
                           {"file:size", files[i].size},
                           {"file:checksum", kSha256Multihash + files[i].sha256_hex}};
  }

  Json properties = {{"datetime", FormatTime(info.finished)},
                     {"created", FormatTime(info.created)},
                     {"title", SanitizeUtf8(info.title)},
                     {"spoold:state", SanitizeUtf8(info.state)},
                     {"spoold:pool", SanitizeUtf8(info.pool)}};
  if (walker.truncated()) properties["spoold:assets_truncated"] = true;
  if (walker.unlisted_count() > 0) {
    std::vector<std::string>& unlisted = walker.unlisted();
    std::sort(unlisted.begin(), unlisted.end());
    Json names = Json::array();
    for (const std::string& path : unlisted) names.push_back(SanitizeUtf8(path));
    properties["spoold:unlisted"] = std::move(names);
    properties["spoold:unlisted_count"] = walker.unlisted_count();
  }

  return Json{
      {"type", "Feature"},
      {"stac_version", "1.0.0"},
      {"stac_extensions", Json::array({kFileExtension})},
      {"id", SanitizeUtf8(info.job_id)},
      {"geometry", nullptr},
      {"properties", std::move(properties)},
      {"links",
       Json::array({Json{{"rel", "self"}, {"href", "./results.json"}, {"type", "application/json"}}})},
      {"assets", std::move(assets)}};
}

}  // namespace spoold
