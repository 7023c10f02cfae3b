// Finding the spool root (issue 4): --root DIR, else --config FILE's spool.root,
// else $SPOOLD_ROOT, else the default configuration's spool.root. A folder is a
// spool when it has jobs/ and incoming/, or an index.json. Fills in the Context;
// reads the configuration, writes nothing.
#pragma once

#include "cli/args.h"
#include "cli/common.h"

namespace spoold::cli {

// Sets ctx.paths (and ctx.config when a configuration is known). With
// RootUse::kOptional, finding no root is not an error unless one was named.
Status SetupRoot(Context& ctx, const Args& args, RootUse use);

}  // namespace spoold::cli
