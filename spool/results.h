// results.json (SPEC.md section 4): a STAC 1.0.0 Item listing the files under a
// job's results/ folder, with media types, sizes and sha256 multihash checksums.
// Reads the results folder; writes nothing (the caller writes the Item atomically).
// Unreadable entries are skipped and named in properties "spoold:unlisted";
// limits: 64 folder levels and 100,000 files ("spoold:assets_truncated"). Hrefs
// are percent-encoded raw paths, so names with any bytes still resolve. Media
// types come from /etc/mime.types, except .tif ("image/tiff; application=geotiff")
// and a few common result types it lacks (.log, .yaml, .toml, .parquet, .h5).
// Only resource exhaustion or a results/ that exists but cannot be opened returns
// an error (io_error).
#pragma once

#include <string>

#include "config/result.h"
#include "spool/json_util.h"
#include "spool/media_types.h"
#include "spool/time_util.h"

namespace spoold {

struct ResultsInfo {
  std::string job_id;
  std::string title;
  std::string state;  // terminal state: succeeded, failed, cancelled
  std::string pool;
  TimePoint created;
  TimePoint finished;
};

// Walks `job_dir`/results/ recursively (symbolic links and special files are not
// followed and not listed) and builds the Item. Asset keys are paths relative to
// results/ ("sub/x.csv"), hrefs relative to the job folder ("results/sub/x.csv").
Result<Json> BuildResultsItem(const std::string& job_dir, const ResultsInfo& info);

// The media type for a file name, by extension (ASCII case ignored): .tif/.tiff
// are GeoTIFF, the others are looked up in `table`; "application/octet-stream"
// if unknown.
std::string MediaTypeFor(const std::string& file_name, const MediaTypeTable& table = SystemMediaTypes());

}  // namespace spoold
