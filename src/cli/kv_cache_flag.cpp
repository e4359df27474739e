#include "cli/kv_cache_flag.h"

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "cli/verbose.h"
#include "model/kv_cache.h"

namespace kindred::cli {

void add_kv_cache_flag(CLI::App& command, DType& kv_cache) {
    kv_cache = DType::F32;
    command
        .add_option_function<std::string>(
            "--kv-cache", [&kv_cache](const std::string& value) { kv_cache = *model::kv_cache_type_from_name(value); },
            "Element type of the KV cache: f32 (exact), f16 (half the memory) or q8_0 (ggml's 8-bit blocks, 17/64 "
            "of the memory); docs/models.md")
        ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
        ->default_str("f32");
}

void report_kv_cache(const model::Decoder& decoder) {
    if (verbose()) fmt::print(stderr, "kindred: kv cache: {}\n", model::kv_cache_type_name(decoder.kv_cache_type()));
}

}  // namespace kindred::cli
