// Daemon (daemon.h): the Prometheus text file (SPEC.md section 11). Written
// whole under a temporary name and renamed (a reader, node exporter or
// `spoolctl serve`, sees the old file or the new one), at most once per
// metrics.interval while something changes, once at start and once at a
// clean stop.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "daemon/daemon.h"
#include "daemon/version.h"
#include "spool/fileio.h"

namespace spoold {

// Where Debian's prometheus-node-exporter reads *.prom files (its
// --collector.textfile.directory, set in /etc/default/prometheus-node-exporter).
constexpr const char* kNodeExporterTextfileDir = "/var/lib/prometheus/node-exporter";

std::string Daemon::MetricsPath() const {
  if (!config_.metrics_path.empty()) return config_.metrics_path;
  // The default root's daemon is the machine's spoold: where the node
  // exporter is installed, its metrics go where it reads them. Any other
  // root keeps them inside, so that two daemons never write one file.
  struct stat st {};
  if (paths_.Root() == Config{}.root && ::stat(kNodeExporterTextfileDir, &st) == 0 && S_ISDIR(st.st_mode)) {
    return std::string(kNodeExporterTextfileDir) + "/spoold.prom";
  }
  return paths_.RootMetrics();
}

void Daemon::MetricsChanged() {
  metrics_.MarkChanged();
  if (!metrics_timer_ || metrics_timer_->Active()) return;
  // At most once per interval: the first change after a quiet spell waits
  // out the rest of the interval since the last write, none if it is over.
  const auto since = std::chrono::steady_clock::now() - metrics_written_;
  const auto wait = std::chrono::duration_cast<Millis>(config_.metrics_interval - since);
  metrics_timer_->Start(wait.count() > 0 ? static_cast<uint64_t>(wait.count()) : 0);
}

void Daemon::WriteMetrics() {
  metrics_written_ = std::chrono::steady_clock::now();
  metrics_.MarkWritten();
  Metrics::Snapshot snapshot;
  for (const auto& [name, pool] : scheduler_.Pools()) {
    snapshot.pools.push_back({name, pool.config.workers, pool.running, pool.queued, pool.paused});
  }
  for (const auto& count : index_jobs_.Counts())
    snapshot.jobs.push_back({count.pool, count.state, count.count});
  snapshot.start_time_s = static_cast<double>(started_at_.time_since_epoch().count()) / 1000.0;
  snapshot.version = Version();
  const std::string text = metrics_.Render(snapshot);
  // <root>/metrics.prom always (`spoolctl serve` serves it at /metrics; it
  // serves nothing outside the root), and metrics.path besides.
  std::vector<std::string> paths = {paths_.RootMetrics()};
  if (std::string path = MetricsPath(); path != paths.front()) paths.push_back(std::move(path));
  for (const auto& path : paths) {
    // No fsync: a reader wants the latest numbers, and a crash restarts the
    // counters anyway.
    if (auto st = ReplaceFileNoSync(path, text); !st.ok()) {
      std::string message = "cannot write metrics to " + path + " (" + st.error().message +
                            "); trying again at the next change";
      if (path != paths.front()) message += "; they are in " + paths.front() + " meanwhile";
      if (config_.metrics_path.empty()) {
        // The node exporter's folder, by default: say how to let us in.
        message += " (to let spoold write there, give its user write access to " +
                   std::string(kNodeExporterTextfileDir) + ", or set metrics.path; SPEC.md section 11)";
      }
      Trouble("metrics:" + path, message);
      continue;
    }
    TroubleOver("metrics:" + path);
  }
}

}  // namespace spoold
