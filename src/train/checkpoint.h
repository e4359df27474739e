// train/checkpoint.h — resumable training state on disk, crash-safe: after `kill -9` at any moment
// the newest complete checkpoint loads, and a torn or corrupted one is refused with a clear Error.
//
// Layout, one directory per optimizer step under the run's checkpoint root:
//   <root>/step-000120/adapter.safetensors    adapter parameters, F32, by name
//   <root>/step-000120/optimizer.safetensors  AdamW moments, F32: "m.<name>" and "v.<name>"
//   <root>/step-000120/config.yaml            the resolved recipe text
//   <root>/step-000120/state.json             scalars (below) + size and FNV-1a 64 of every file above
//   <root>/latest                             "step-000120\n"
// state.json: {"format": "kindred-checkpoint", "version": 1, "step", "adam_step", "rng" (opaque
// text, e.g. a std::mt19937_64 streamed out), "data": {"epoch", "index"}, "schedule": {peak_lr,
// warmup_steps, total_steps, decay "constant"|"cosine", min_lr_ratio, cycles}, "adapter": [{"name",
// "shape"}] in order, "files": {name: {"bytes", "fnv1a64"}}}.
//
// Writing: everything goes into <root>/.tmp-step-000120 (each file fsynced, state.json last), the
// folder is fsynced and renamed to step-000120, the root is fsynced, and only then is `latest`
// replaced atomically. So `latest` only ever names a complete directory; a crash leaves at worst a
// .tmp- folder (removed by the next save) or a complete step the pointer does not name yet. A
// folder of the same step already there (that complete step, or a broken one a resumed run fell
// back from) is renamed aside before the new one takes its name, and removed afterwards.
// Older step folders beyond keep_last are then removed (never the one `latest` names).
//
// Loading validates magic, version, the step against the folder name, every file's size and
// checksum, the tensor names, dtypes and shapes (m and v mirror the adapter), and the scalars.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/batch.h"
#include "train/schedule.h"

namespace kindred::train {

struct NamedTensor {
    std::string name;
    std::vector<std::uint64_t> shape;
    std::vector<float> values;  // row-major, product(shape) elements
    bool operator==(const NamedTensor&) const = default;
};

struct TrainState {
    std::int64_t step = 0;       // optimizer steps taken
    std::vector<NamedTensor> adapter;
    std::vector<NamedTensor> adam_m;  // same names and shapes as adapter, same order
    std::vector<NamedTensor> adam_v;
    std::int64_t adam_step = 0;  // AdamW's bias-correction step count
    std::string rng;             // the trainer's RNG state as text
    DataPosition data;
    LrSchedule schedule;
    std::string config_text;
};

// "step-000120" (at least six digits).
std::string checkpoint_dir_name(std::int64_t step);

// Writes <root>/step-NNNNNN atomically, points `latest` at it and prunes to the newest `keep_last`
// step folders (0 keeps all). Creates root when missing. Returns the new directory. Throws Error
// when the state is inconsistent (shapes, names) or a write fails; `latest` is then untouched.
std::string save_checkpoint(const std::string& root, const TrainState& state, std::size_t keep_last);

// Loads and validates one step directory; Error names the directory, file and problem.
TrainState load_checkpoint(const std::string& directory);

struct LoadedCheckpoint {
    TrainState state;
    std::string directory;
    std::vector<std::string> rejected;  // "<dir>: <why>" for each newer candidate refused
};

// The checkpoint `latest` names; when it (or `latest`) is missing or invalid, the newest step
// folder that validates, with the refusals listed. `directory` is empty when root holds no
// checkpoint at all (a fresh run); Error when there are candidates and none validates.
LoadedCheckpoint load_latest_checkpoint(const std::string& root);

// Error naming the tensor unless `state.adapter` has exactly these names and shapes in this order
// (a resumed run's adapter layout must match the model it is attached to).
void check_adapter_layout(const TrainState& state, std::span<const NamedTensor> expected);

}  // namespace kindred::train
