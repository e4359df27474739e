// cli/verbose.h — `--verbose` (cli/main.cpp): besides the CPU paths main prints, commands say on
// stderr what else they run with (the KV cache's type, cli/kv_cache_flag.h).
#pragma once

namespace kindred::cli {

// Set by --verbose while the command line is parsed, before any command runs.
bool& verbose();

}  // namespace kindred::cli
