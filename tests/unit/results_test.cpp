// Tests of spool/sha256 and spool/results: SHA-256 (libcrypto behind our wrapper)
// against published vectors and sha256sum, media types by extension, and
// BuildResultsItem on real temporary job folders (nested files, hostile names,
// links, FIFOs, sockets, unreadable entries, limits), with the Item checked
// against the offline STAC 1.0.0 schema.
#include "spool/results.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "spool/json_util.h"
#include "spool/sha256.h"
#include "test_files.h"

using namespace spoold;
using namespace testfiles;

namespace {


void MakeDir(const std::string& path) { REQUIRE(mkdir(path.c_str(), 0755) == 0); }

ResultsInfo TestInfo() {
  ResultsInfo info;
  info.job_id = "nightly-1";
  info.title = "Nightly ETL";
  info.state = "succeeded";
  info.pool = "default";
  info.created = TimePoint(std::chrono::milliseconds(1763719200123));
  info.finished = TimePoint(std::chrono::milliseconds(1763719260456));
  return info;
}

// The validator's exit status for `item` written to a file in `dir`: 0 valid,
// 1 invalid, 2 usage or I/O error. Its output is kept for the failure message.
int ValidateItem(const Json& item, const std::string& dir, std::string* output) {
  std::string item_path = dir + "/item.json";
  std::string out_path = dir + "/validator.out";
  WriteFile(item_path, DumpJson(item, 2));
  std::string command = "/usr/bin/python3 '" SPOOLD_SOURCE_DIR "/tests/stac/validate_stac_item.py' '" +
                        item_path + "' > '" + out_path + "' 2>&1";
  int status = std::system(command.c_str());
  *output = ReadFile(out_path);
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// sha256sum's digest of a file: a second implementation to compare against.
std::string ExternalSha256(const std::string& path, const std::string& dir) {
  std::string out_path = dir + "/sha256sum.out";
  std::string command = "sha256sum '" + path + "' > '" + out_path + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  return ReadFile(out_path).substr(0, 64);
}

// Runs BuildResultsItem with a time limit, so a walk that blocks (on a FIFO, say)
// fails the test instead of hanging it: SIGALRM ends the process.
Result<Json> BuildWithDeadline(const std::string& job_dir) {
  alarm(60);
  Result<Json> item = BuildResultsItem(job_dir, TestInfo());
  alarm(0);
  return item;
}

// Runs BuildResultsItem as an unprivileged user, because root reads files whatever
// their permissions and the "unreadable" cases would not be unreadable. As root it
// forks, drops to uid/gid 65534 in the child and gets the outcome through a pipe.
Result<Json> BuildAsUnprivileged(const std::string& job_dir) {
  if (geteuid() != 0) return BuildWithDeadline(job_dir);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    alarm(60);
    std::string message;
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
      message = "ERR\nsetup\ncannot drop privileges";
    } else {
      Result<Json> item = BuildResultsItem(job_dir, TestInfo());
      message =
          item.ok() ? "OK\n" + DumpJson(*item) : "ERR\n" + item.error().code + "\n" + item.error().message;
    }
    size_t done = 0;
    while (done < message.size()) {
      ssize_t n = write(fds[1], message.data() + done, message.size() - done);
      if (n <= 0) _exit(1);
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  if (message.rfind("OK\n", 0) == 0) return Json::parse(message.substr(3));
  REQUIRE(message.rfind("ERR\n", 0) == 0);
  size_t code_end = message.find('\n', 4);
  REQUIRE(code_end != std::string::npos);
  return MakeError(message.substr(4, code_end - 4), message.substr(code_end + 1));
}

// Lets uid 65534 reach `path` (mkdtemp makes the folder private).
void OpenUp(const std::string& path) { REQUIRE(chmod(path.c_str(), 0755) == 0); }

struct MediaTypeCase {
  const char* name;
  const char* type;
};

void CheckMediaTypes(std::span<const MediaTypeCase> cases, const MediaTypeTable& table) {
  for (const MediaTypeCase& c : cases) {
    CAPTURE(c.name);
    CHECK(MediaTypeFor(c.name, table) == c.type);
  }
}

}  // namespace

TEST_CASE("sha256: the FIPS 180-2 / NIST example vectors") {
  CHECK(Sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(Sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqkl"
                  "mnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST_CASE("sha256: one million 'a' fed in odd chunk sizes") {
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  const std::string data(1000000, 'a');
  const size_t chunk_sizes[] = {1, 7, 63, 64, 65, 0, 127, 4099, 65536, 3};
  Sha256 hash;
  size_t offset = 0;
  for (size_t i = 0; offset < data.size(); ++i) {
    size_t n = std::min(chunk_sizes[i % std::size(chunk_sizes)], data.size() - offset);
    hash.Update(data.data() + offset, n);
    offset += n;
  }
  auto digest = hash.Finish();
  CHECK(ToHex(digest.data(), digest.size()) == expected);
  CHECK(Sha256Hex(data) == expected);
}

TEST_CASE("sha256: padding around the block boundary") {
  // Expected values computed with Python's hashlib (OpenSSL), an independent
  // implementation; 55/56 and 119/120 bytes are where the length field stops
  // fitting in the last block.
  struct {
    size_t length;
    const char* hex;
  } cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.length);
    CHECK(Sha256Hex(std::string(c.length, 'a')) == c.hex);
  }
}

TEST_CASE("sha256: ToHex writes two lower-case digits per byte") {
  const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  CHECK(ToHex(bytes, sizeof bytes) == "000fa5ff");
  CHECK(ToHex(bytes, 0) == "");
}

TEST_CASE("sha256: a 1 MB result file, hashed in read-sized chunks, matches NIST and sha256sum") {
  // One million 'a' is the FIPS 180-2 long-message vector; BuildResultsItem reads
  // it in 64 KiB chunks, so the digest is carried across many updates of a
  // size that is not a multiple of the file's.
  TempDir tmp;
  const std::string job = tmp.path() + "/job";
  MakeDir(job);
  MakeDir(job + "/results");
  WriteFile(job + "/results/million.txt", std::string(1000000, 'a'));
  Result<Json> built = BuildWithDeadline(job);
  REQUIRE(built.ok());
  Json item = *built;
  const std::string nist = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  CHECK(item["assets"]["million.txt"]["file:size"] == 1000000);
  CHECK(item["assets"]["million.txt"]["file:checksum"] == "1220" + nist);
  CHECK(ExternalSha256(job + "/results/million.txt", tmp.path()) == nist);
}

TEST_CASE("results: MediaTypeFor finds the extension and ignores its case") {
  const MediaTypeTable table = MediaTypeTable::Parse(
      "text/plain txt log\n"
      "application/json json\n"
      "application/gzip gz\n"
      "image/tiff tiff tif\n");
  const MediaTypeCase cases[] = {
      {"notes.txt", "text/plain"},
      {"NOTES.TXT", "text/plain"},
      {"run.Log", "text/plain"},
      {"meta.json", "application/json"},
      {"sub/dir/x.json", "application/json"},
      {"archive.tar.gz", "application/gzip"},
      // GeoTIFF whatever the table says: the override comes first.
      {"ndvi.tif", "image/tiff; application=geotiff"},
      {"NDVI.TIFF", "image/tiff; application=geotiff"},
      {"array.npy", "application/octet-stream"},
      {"Makefile", "application/octet-stream"},
      {".json", "application/octet-stream"},
      {"dir.json/data", "application/octet-stream"},
      {"trailing.", "application/octet-stream"},
      {"weird.t\xffxt", "application/octet-stream"},
      {"", "application/octet-stream"},
  };
  CheckMediaTypes(cases, table);
}

TEST_CASE("results: MediaTypeFor without a mime.types knows only GeoTIFF and the fallbacks") {
  const MediaTypeCase cases[] = {{"meta.json", "application/octet-stream"},
                                 {"ndvi.tif", "image/tiff; application=geotiff"},
                                 {"run.log", "text/plain"},
                                 {"conf.YML", "application/yaml"},
                                 {"table.parquet", "application/vnd.apache.parquet"}};
  CheckMediaTypes(cases, MediaTypeTable::Load("/nonexistent/mime.types"));
}

TEST_CASE("results: the fallback types apply only where mime.types has no entry") {
  const MediaTypeTable table = MediaTypeTable::Parse("text/x-log log\n");
  const MediaTypeCase cases[] = {{"run.log", "text/x-log"}, {"data.h5", "application/x-hdf5"}};
  CheckMediaTypes(cases, table);
}

TEST_CASE("results: MediaTypeFor with the system's /etc/mime.types") {
  REQUIRE_MESSAGE(SystemMediaTypes().size() > 0, "/etc/mime.types is missing: install media-types");
  const MediaTypeCase cases[] = {
      {"notes.txt", "text/plain"},
      {"table.csv", "text/csv"},
      {"table.tsv", "text/tab-separated-values"},
      {"meta.json", "application/json"},
      {"areas.geojson", "application/geo+json"},
      {"ndvi.tif", "image/tiff; application=geotiff"},
      {"NDVI.TIFF", "image/tiff; application=geotiff"},
      {"plot.png", "image/png"},
      {"photo.jpg", "image/jpeg"},
      {"photo.JPEG", "image/jpeg"},
      {"anim.gif", "image/gif"},
      {"chart.svg", "image/svg+xml"},
      {"report.html", "text/html"},
      {"report.htm", "text/html"},
      {"data.xml", "application/xml"},
      {"cube.nc", "application/x-netcdf"},
      {"bundle.zip", "application/zip"},
      {"archive.tar.gz", "application/gzip"},
      {"archive.tar", "application/x-tar"},
      {"paper.pdf", "application/pdf"},
      {"README.md", "text/markdown"},
      {"sub/dir/x.csv", "text/csv"},
      // Not in Debian 12's mime.types: the fallbacks.
      {"run.log", "text/plain"},
      {"conf.yaml", "application/yaml"},
      {"conf.toml", "application/toml"},
      {"table.parquet", "application/vnd.apache.parquet"},
      {"grid.hdf5", "application/x-hdf5"},
      {"Makefile", "application/octet-stream"},
  };
  CheckMediaTypes(cases, SystemMediaTypes());
}

TEST_CASE("results: only regular files are listed with sizes and checksums") {
  TempDir tmp;
  const std::string job = tmp.path() + "/job";
  const std::string results = job + "/results";
  MakeDir(job);
  MakeDir(results);
  MakeDir(results + "/sub");
  MakeDir(results + "/sub/deeper");
  MakeDir(results + "/emptydir");

  // More than two 64 KiB read chunks, with a length that is not a multiple of 64.
  std::string big(200003, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + 7) % 251);

  struct {
    std::string raw;  // path under results/
    std::string key;
    std::string href;
    std::string content;
    std::string type;
  } expected[] = {
      {"a.txt", "a.txt", "results/a.txt", "hello\n", "text/plain"},
      {"empty.csv", "empty.csv", "results/empty.csv", "", "text/csv"},
      {"big.tif", "big.tif", "results/big.tif", big, "image/tiff; application=geotiff"},
      {"sub/deeper/data.json", "sub/deeper/data.json", "results/sub/deeper/data.json", "{\"x\": 1}\n",
       "application/json"},
      {"odd name #1?%.txt", "odd name #1?%.txt", "results/odd%20name%20%231%3F%25.txt", "odd", "text/plain"},
      // A valid name that already holds U+FFFD keeps its key; the two invalid names
      // that sanitize to the same text get ~2 and ~3 in byte order (0xfe < 0xff).
      // Their hrefs percent-encode the raw bytes, so they still find the files.
      {"bad\xEF\xBF\xBD.txt", "bad\xEF\xBF\xBD.txt", "results/bad%EF%BF%BD.txt", "real", "text/plain"},
      {"bad\xfe.txt", "bad\xEF\xBF\xBD~2.txt", "results/bad%FE.txt", "fe", "text/plain"},
      {"bad\xff.txt", "bad\xEF\xBF\xBD~3.txt", "results/bad%FF.txt", "ff!", "text/plain"},
  };
  for (const auto& e : expected) WriteFile(results + "/" + e.raw, e.content);

  // None of these may appear: links (to a file, a folder, outside the job), a
  // dangling link, a FIFO (opening it for reading would block), a socket.
  REQUIRE(symlink("a.txt", (results + "/link.txt").c_str()) == 0);
  REQUIRE(symlink("sub", (results + "/dirlink").c_str()) == 0);
  REQUIRE(symlink("/etc", (results + "/etc").c_str()) == 0);
  REQUIRE(symlink("nowhere", (results + "/dangling.txt").c_str()) == 0);
  REQUIRE(mkfifo((results + "/fifo.csv").c_str(), 0644) == 0);
  int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock_path = results + "/sock.json";
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  REQUIRE(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(sock);
  // results.json itself lives beside results/, not in it.
  WriteFile(job + "/results.json", "{}");

  Result<Json> built = BuildWithDeadline(job);
  REQUIRE(built.ok());
  // A copy: operator[] on a non-const Json gives null for a missing key (the
  // check fails) where the const one would assert and abort the test binary.
  Json item = *built;

  CHECK(item["type"] == "Feature");
  CHECK(item["stac_version"] == "1.0.0");
  CHECK(item["stac_extensions"] ==
        Json::array({"https://stac-extensions.github.io/file/v2.1.0/schema.json"}));
  CHECK(item["id"] == "nightly-1");
  CHECK(item["geometry"].is_null());
  CHECK_FALSE(item.contains("bbox"));
  Json& props = item["properties"];
  CHECK(props["datetime"] == FormatTime(TestInfo().finished));
  CHECK(props["created"] == FormatTime(TestInfo().created));
  CHECK(props["title"] == "Nightly ETL");
  CHECK(props["spoold:state"] == "succeeded");
  CHECK(props["spoold:pool"] == "default");
  CHECK_FALSE(props.contains("spoold:assets_truncated"));
  CHECK_FALSE(props.contains("spoold:unlisted"));
  CHECK(item["links"] == Json::parse(R"([{"rel": "self", "href": "./results.json",
                                          "type": "application/json"}])"));

  Json& assets = item["assets"];
  std::vector<std::string> keys;
  for (const auto& [key, value] : assets.items()) keys.push_back(key);
  std::vector<std::string> expected_keys;
  for (const auto& e : expected) expected_keys.push_back(e.key);
  std::sort(expected_keys.begin(), expected_keys.end());
  CHECK(keys == expected_keys);  // sorted, and nothing but the regular files

  for (const auto& e : expected) {
    CAPTURE(PrintableName(e.raw));
    REQUIRE(assets.contains(e.key));
    Json& asset = assets[e.key];
    CHECK(asset["href"] == e.href);
    CHECK(asset["type"] == e.type);
    CHECK(asset["roles"] == Json::array({"data"}));
    CHECK(asset["file:size"] == e.content.size());
    CHECK(asset["file:checksum"] == "1220" + Sha256Hex(e.content));
  }
  // One checksum against a different implementation, on the multi-chunk file.
  CHECK(assets["big.tif"]["file:checksum"] == "1220" + ExternalSha256(results + "/big.tif", tmp.path()));
  CHECK(assets["empty.csv"]["file:checksum"] ==
        "1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  // The whole Item goes through DumpJson and parses back unchanged.
  CHECK(Json::parse(DumpJson(item)) == item);

  std::string output;
  CHECK_MESSAGE(ValidateItem(item, tmp.path(), &output) == 0, output);
}

TEST_CASE("results: the STAC validator rejects broken Items so its approval means something") {
  TempDir tmp;
  const std::string job = tmp.path() + "/job";
  MakeDir(job);
  MakeDir(job + "/results");
  WriteFile(job + "/results/a.csv", "x\n1\n");
  Result<Json> built = BuildWithDeadline(job);
  REQUIRE(built.ok());

  std::string output;
  REQUIRE_MESSAGE(ValidateItem(*built, tmp.path(), &output) == 0, output);

  Json no_links = *built;
  no_links.erase("links");
  CHECK_MESSAGE(ValidateItem(no_links, tmp.path(), &output) == 1, output);
  CHECK(output.find("links") != std::string::npos);

  Json with_bbox = *built;  // a bbox is not allowed with a null geometry
  with_bbox["bbox"] = Json::array({0, 0, 1, 1});
  CHECK_MESSAGE(ValidateItem(with_bbox, tmp.path(), &output) == 1, output);

  Json bad_time = *built;
  bad_time["properties"]["datetime"] = "2026-11-21T10:00:00+02:00";
  CHECK_MESSAGE(ValidateItem(bad_time, tmp.path(), &output) == 1, output);
}

TEST_CASE("results: no results folder means no assets") {
  TempDir tmp;
  const std::string job = tmp.path() + "/job";
  MakeDir(job);

  SUBCASE("missing") {}
  SUBCASE("a symbolic link to a folder full of files is not followed") {
    MakeDir(tmp.path() + "/elsewhere");
    WriteFile(tmp.path() + "/elsewhere/secret.txt", "secret");
    REQUIRE(symlink("../elsewhere", (job + "/results").c_str()) == 0);
  }
  SUBCASE("a regular file") { WriteFile(job + "/results", "not a folder"); }

  Result<Json> built = BuildWithDeadline(job);
  REQUIRE(built.ok());
  CHECK((*built)["assets"] == Json::object());
  CHECK_FALSE((*built)["properties"].contains("spoold:unlisted"));
  std::string output;
  CHECK_MESSAGE(ValidateItem(*built, tmp.path(), &output) == 0, output);
}

TEST_CASE("results: unreadable files and folders are skipped and named") {
  TempDir tmp;
  OpenUp(tmp.path());
  const std::string job = tmp.path() + "/job";
  const std::string results = job + "/results";
  MakeDir(job);
  MakeDir(results);
  WriteFile(results + "/ok.txt", "fine");
  WriteFile(results + "/secret.txt", "hidden");
  REQUIRE(chmod((results + "/secret.txt").c_str(), 0) == 0);
  MakeDir(results + "/locked");
  WriteFile(results + "/locked/inside.txt", "unseen");
  REQUIRE(chmod((results + "/locked").c_str(), 0) == 0);
  WriteFile(results + "/bad\xff.bin", "x");
  REQUIRE(chmod((results + "/bad\xff.bin").c_str(), 0) == 0);

  Result<Json> built = BuildAsUnprivileged(job);
  REQUIRE_MESSAGE(built.ok(), (built.ok() ? "" : built.error().message));
  Json item = *built;
  CHECK(item["assets"].size() == 1);
  CHECK(item["assets"]["ok.txt"]["file:checksum"] == "1220" + Sha256Hex("fine"));
  CHECK(item["properties"]["spoold:unlisted"] ==
        Json::array({"bad\xEF\xBF\xBD.bin", "locked/", "secret.txt"}));
  CHECK(item["properties"]["spoold:unlisted_count"] == 3);
  std::string output;
  CHECK_MESSAGE(ValidateItem(item, tmp.path(), &output) == 0, output);
}

TEST_CASE("results: io_error when results/ exists but cannot be read") {
  TempDir tmp;
  OpenUp(tmp.path());
  const std::string job = tmp.path() + "/job";
  MakeDir(job);
  MakeDir(job + "/results");
  REQUIRE(chmod((job + "/results").c_str(), 0) == 0);

  Result<Json> built = BuildAsUnprivileged(job);
  REQUIRE_FALSE(built.ok());
  CHECK(built.error().code == "io_error");
  CHECK(built.error().message.find(job + "/results") != std::string::npos);
  CHECK(built.error().message.find(std::strerror(EACCES)) != std::string::npos);
}

TEST_CASE("results: the walk descends at most 64 folders below results/") {
  TempDir tmp;
  const std::string job = tmp.path() + "/job";
  MakeDir(job);
  MakeDir(job + "/results");
  std::string deepest_ok;  // 64 folders: its file is listed
  std::string too_deep;    // 65 folders: the 65th is not entered
  std::string path = job + "/results";
  for (int i = 0; i < 64; ++i) {
    path += "/d";
    deepest_ok += "d/";
    MakeDir(path);
  }
  WriteFile(path + "/f.txt", "deep");
  path = job + "/results";
  for (int i = 0; i < 65; ++i) {
    path += "/e";
    too_deep += "e/";
    MakeDir(path);
  }
  WriteFile(path + "/g.txt", "too deep");

  Result<Json> built = BuildWithDeadline(job);
  REQUIRE(built.ok());
  Json item = *built;
  CHECK(item["assets"].size() == 1);
  CHECK(item["assets"].contains(deepest_ok + "f.txt"));
  CHECK(item["properties"]["spoold:unlisted"] == Json::array({too_deep}));
}

TEST_CASE("results: listing stops after 100000 files with a note") {
  // 100001 files cost little on tmpfs but many seconds on a disk, so the tree goes
  // to /dev/shm when there is one.
  struct stat shm;
  bool have_shm = stat("/dev/shm", &shm) == 0 && S_ISDIR(shm.st_mode) && access("/dev/shm", W_OK) == 0;
  TempDir tmp(have_shm ? "/dev/shm" : "/tmp");
  const std::string job = tmp.path() + "/job";
  const std::string results = job + "/results";
  MakeDir(job);
  MakeDir(results);
  // Two folders so the limit falls in the middle of the walk, not at the end of
  // one folder: a/ holds 60000 files, b/ 40001; one file too many in total.
  auto fill = [&](const std::string& dir, int count) {
    MakeDir(dir);
    int failures = 0;
    for (int i = 0; i < count; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "/%06d.txt", i);
      int fd = open((dir + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0)
        ++failures;
      else
        close(fd);
    }
    REQUIRE(failures == 0);
  };
  fill(results + "/a", 60000);
  fill(results + "/b", 40001);

  Result<Json> over = BuildWithDeadline(job);
  REQUIRE(over.ok());
  CHECK((*over)["assets"].size() == 100000);
  CHECK((*over)["assets"].contains("b/039999.txt"));
  CHECK_FALSE((*over)["assets"].contains("b/040000.txt"));
  CHECK((*over)["properties"]["spoold:assets_truncated"] == true);

  // Exactly at the limit: everything is listed and there is no note.
  REQUIRE(unlink((results + "/a/000000.txt").c_str()) == 0);
  Result<Json> at = BuildWithDeadline(job);
  REQUIRE(at.ok());
  CHECK((*at)["assets"].size() == 100000);
  CHECK((*at)["assets"].contains("b/040000.txt"));
  CHECK_FALSE((*at)["properties"].contains("spoold:assets_truncated"));
}
