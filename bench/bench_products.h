// bench/bench_products.h — the `--products int8|fp32` flag of the decoder benchmarks, spelled as
// `kindred generate --products` (cli/products_flag.h): the Precision of the decoder's products.
#pragma once

#include <string>

#include "core/error.h"
#include "kernels/matmul.h"

namespace kindred::bench {

inline kernels::Precision products(const std::string& value) {
    const auto precision = kernels::parse_precision(value);
    if (!precision || *precision == kernels::Precision::BF16) fail("--products must be int8 or fp32, got '{}'", value);
    return *precision;
}

}  // namespace kindred::bench
