// data/esconv.h — ESConv (Liu et al., 2021) in either release layout: the original ESConv.json (one
// JSON list; seeker/supporter turns with `annotation` {strategy}|{feedback}|{}) or the Hugging Face
// thu-coai/esconv JSONL (one conversation per line; usr/sys turns with `text` and `strategy`).
// The list is memory-mapped and cut into one conversation at a time by a string-aware bracket scan,
// so only one conversation is ever parsed into a DOM and every record keeps its line number.
// One example per conversation; consecutive turns of one speaker are merged into one message.
#pragma once

#include <string>

#include "data/source.h"

namespace kindred::data {

inline constexpr const char* kEsconvLicense = "CC BY-NC 4.0";

// ESConv has no official split: each conversation goes where hash_split() of its id sends it. The
// id is "esconv:" + FNV-1a of its emotion, situation and turn texts, so it survives re-ordering.
void load_esconv(const std::string& path, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink);

}  // namespace kindred::data
