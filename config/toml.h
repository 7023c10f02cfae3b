// The one way to include toml++ in this project. The library's implementation is
// compiled once (config/toml_impl.cpp) and exceptions are off, so parse results
// are checked as values. toml++ 3.3 has inputs that crash it (deep dotted keys
// overflow the stack; some short inputs trip its internal asserts, which become
// undefined behaviour under NDEBUG): never hand it text that did not pass
// CheckTomlSafety (config/toml_safety.h) first.
#pragma once

#include <toml++/toml.h>
