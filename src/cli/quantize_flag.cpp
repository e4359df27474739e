#include "cli/quantize_flag.h"

#include <string>

namespace kindred::cli {

void add_quantize_flag(CLI::App& command, model::BaseQuantization& quantization) {
    command
        .add_option_function<std::string>(
            "--quantize", [&quantization](const std::string& value) { quantization = *model::parse_base_quantization(value); },
            "Quantize a bf16/fp16/fp32 model's linear weights at load: q4_k (llama.cpp's Q4_K) or nf4 "
            "(bitsandbytes' NF4, double-quantized); docs/models.md")
        ->check(CLI::IsMember({"none", "q4_k", "nf4"}))
        ->default_str("none");
}

}  // namespace kindred::cli
