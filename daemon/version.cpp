#include "daemon/version.h"

namespace spoold {
const char* Version() { return SPOOLD_VERSION; }
}  // namespace spoold
