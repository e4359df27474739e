// data/split.h — splits for sources without official ones (ESConv): a conversation's split is a
// pure function of its id through 64-bit FNV-1a, so it never moves between runs, machines or file
// orders, and one conversation can never land in two splits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kindred::data {

// 64-bit FNV-1a (Fowler, Noll, Vo): offset basis 0xcbf29ce484222325, prime 0x100000001b3.
std::uint64_t fnv1a64(std::string_view bytes);

// Buckets fnv1a64(id) % 100: 0..79 train, 80..89 dev, 90..99 test.
std::string hash_split(std::string_view id);

}  // namespace kindred::data
