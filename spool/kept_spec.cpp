#include "spool/kept_spec.h"

#include "spool/document.h"

namespace spoold {

KeptSpec::KeptSpec(JobSpec spec)
    : spec_(std::make_unique<JobSpec>(std::move(spec))),
      format_(spec_->format),
      hold_(spec_->hold),
      deadline_(spec_->deadline),
      timeout_(spec_->timeout),
      has_hooks_(!spec_->hooks.empty()) {}

const JobSpec& KeptSpec::spec() const {
  SPOOLD_CHECK(spec_ != nullptr);
  return *spec_;
}

void KeptSpec::ReleaseHold() {
  hold_ = false;
  if (spec_) spec_->hold = false;
}

void KeptSpec::Freeze(std::string text) {
  SPOOLD_CHECK(spec_ != nullptr);
  text_ = std::move(text);
  text_.shrink_to_fit();
  spec_.reset();
}

Result<JobSpec> KeptSpec::Parse(const std::string& id, const Config& config) const {
  SPOOLD_CHECK(spec_ == nullptr);
  auto doc = ParseDocument(text_, format_);
  if (!doc.ok()) return doc.error();
  auto spec = RevalidateJobSpec(*doc, id, config);
  if (!spec.ok()) return spec.error();
  // The kept fields are the ones the scheduler may have changed since: a start
  // request releases a hold.
  spec->format = format_;
  spec->hold = hold_;
  return spec;
}

Status KeptSpec::Thaw(const std::string& id, const Config& config) {
  if (spec_) return OkStatus();
  auto spec = Parse(id, config);
  if (!spec.ok()) return spec.error();
  spec_ = std::make_unique<JobSpec>(std::move(spec.value()));
  text_.clear();
  text_.shrink_to_fit();
  return OkStatus();
}

}  // namespace spoold
