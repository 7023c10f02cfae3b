// The daemon's version string, as index.json and --version report it.
#pragma once

namespace spoold {
const char* Version();
}
