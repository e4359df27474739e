#include "cli/products_flag.h"

#include <string>

namespace kindred::cli {

kernels::Precision default_inference_products() {
    return kernels::int8_tiles_available() ? kernels::Precision::Int8 : kernels::Precision::F32;
}

void add_products_flag(CLI::App& command, kernels::Precision& products, kernels::Precision default_products) {
    products = default_products;
    command
        .add_option_function<std::string>(
            "--products",
            [&products](const std::string& value) { products = *kernels::parse_precision(value); },
            "Products against the model's quantized weights: int8 (activations quantized to 8 bits, as "
            "llama.cpp does; faster on batches, on MXFP4/K-quant weights, and on CPUs with AMX-INT8) or fp32 (exact); docs/models.md")
        ->check(CLI::IsMember({"int8", "fp32"}))
        ->default_str(kernels::precision_name(default_products));
}

}  // namespace kindred::cli
