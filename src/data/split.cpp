#include "data/split.h"

namespace kindred::data {

std::uint64_t fnv1a64(std::string_view bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const char byte : bytes) {
        hash ^= static_cast<unsigned char>(byte);
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

std::string hash_split(std::string_view id) {
    const auto bucket = fnv1a64(id) % 100;
    if (bucket < 80) return "train";
    if (bucket < 90) return "dev";
    return "test";
}

}  // namespace kindred::data
