// Failpoints: named places where a test build of spoold can be made to die on
// purpose, to prove the crash-safety promises of SPEC.md section 9 at every
// step rather than at random moments. Compiled in only with
// -DSPOOLD_FAILPOINTS=ON (the test build); in a normal build the macro is empty.
//
// SPOOLD_FAILPOINTS="intake.after_commit=kill" kills the process with SIGKILL
// the first time that point is reached; "name=kill:3" at the third time.
// "name=fail" (or "fail:N") makes a SPOOLD_FAILPOINT_FAILS point report an
// I/O error once instead, at the first (N-th) time. Several are separated by
// commas. "name=stop[:N]" stops the process (SIGSTOP) there instead, for a
// test to act in that moment and then let it go on (SIGCONT). Owns a table of
// hit counters.
#pragma once

namespace spoold {

// Whether failpoints are compiled into this binary.
bool FailpointsCompiledIn();

#ifdef SPOOLD_FAILPOINTS
void FailpointHit(const char* name);
bool FailpointFails(const char* name);
#define SPOOLD_FAILPOINT(name) ::spoold::FailpointHit(name)
#define SPOOLD_FAILPOINT_FAILS(name) ::spoold::FailpointFails(name)
#else
#define SPOOLD_FAILPOINT(name) ((void)0)
#define SPOOLD_FAILPOINT_FAILS(name) false
#endif

}  // namespace spoold
