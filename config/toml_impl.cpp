// Compiles toml++'s implementation once for the whole project (see config/toml.h).
#define TOML_IMPLEMENTATION
#include "config/toml.h"
