// The supervisor's reach over what its job started (daemon/exec/supervise.cpp):
// every descendant, forks of forks and the orphans re-parented to it (it is
// their child subreaper), whatever session or process group they moved to.
#pragma once

namespace spoold::exec {

// Sends `sig` to every descendant of this process.
void SignalDescendants(int sig);

}  // namespace spoold::exec
