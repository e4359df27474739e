// core/config.h — YAML recipes: one file per run (configs/*.yaml), `a.b.c=value` overrides from the
// command line, typed reads that remember which keys the program used, and a strict finish() that
// rejects every key nobody read. The code's reads are the schema: there is no separate schema file,
// so a recipe can never drift from what the program understands. Errors name the key, the file and
// the line (or the override that set it). Conventions are documented in configs/README.md.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace kindred {

// Key paths are dot-separated map keys; a segment of digits indexes a sequence
// ("data.sources.0.weight"). Supported value types for get(): bool, int, std::int64_t, double,
// std::string and std::vector of int64/double/string.
class Config {
public:
    // Movable, not copyable: yaml-cpp nodes share their data, so a copy would alias the original.
    Config(Config&&) = default;
    Config& operator=(Config&&) = default;
    Config(const Config&) = delete;
    Config& operator=(const Config&) = delete;

    // Reads a recipe file; throws Error for a missing/unreadable file or bad YAML (with line).
    // The top level must be a mapping (an empty file is an empty recipe).
    static Config load(const std::string& path);
    // Same from text; `source` names it in messages ("<builtin>", a test name).
    static Config parse(std::string_view yaml, std::string source);

    // Applies `a.b.c=value`. The value is parsed as YAML, so `lr=2e-4`, `targets=[q,k,v]`,
    // `name="x y"` and `opt={lr: 1, wd: 0}` work; an empty value is null. Missing maps on the path
    // are created, and a key the recipe lacks is accepted here: whether it exists is decided by
    // finish(), which knows every key the program read (optional keys with defaults included).
    // Throws Error for a malformed assignment, a path through a scalar or an index out of range.
    void apply_override(std::string_view assignment);
    void apply_overrides(const std::vector<std::string>& assignments);

    // Required key: throws Error if missing, or of the wrong type (naming the expected type).
    template <typename T>
    T get(std::string_view key);
    // Optional key: `fallback` when missing or null. The fallback is written into the tree so
    // dump() shows the whole effective configuration.
    template <typename T>
    T get(std::string_view key, T fallback);

    // Whether the key exists and is not null. Does not count as reading it.
    bool has(std::string_view key) const;
    // Element count of a sequence key (0 when missing); for iterating "list.N.field".
    std::size_t size(std::string_view key) const;
    // Child names of a mapping key in file order (empty when missing); for name -> value maps.
    std::vector<std::string> keys(std::string_view key) const;

    // Throws Error listing every key present but never read (nor under a key read whole), each with
    // its file and line or override, and the nearest read key when one is close by edit distance.
    void finish() const;

    // Where a key comes from: "configs/x.yaml line 12", "override 'optim.lr=1'", or the source name.
    std::string where(std::string_view key) const;
    // Throws Error "<where>: '<key>' <message>" for checks the caller makes (ranges, enums).
    [[noreturn]] void fail_at(std::string_view key, std::string_view message) const;

    // The resolved configuration (overrides and used defaults applied) as block YAML; loading it
    // gives the same values.
    std::string dump() const;
    const std::string& source() const { return source_; }

private:
    Config(YAML::Node root, std::string source);
    std::optional<YAML::Node> find(std::string_view key) const;
    void set(std::string_view key, const YAML::Node& value, std::string_view context);
    [[noreturn]] void fail_type(std::string_view key, const YAML::Node& node, std::string_view expected) const;

    YAML::Node root_;
    std::string source_;
    std::set<std::string, std::less<>> read_;
    std::vector<std::pair<std::string, std::string>> overrides_;  // key path, assignment text
};

// Levenshtein distance.
std::size_t edit_distance(std::string_view a, std::string_view b);

// For "did you mean" hints: the first candidate nearest to `key` by edit distance, when it is near
// enough to be a plausible typo (at most max(2, |key| / 4) edits).
template <typename Candidates>
std::optional<std::string> closest_key(std::string_view key, const Candidates& candidates) {
    std::optional<std::string> best;
    std::size_t best_distance = std::max<std::size_t>(2, key.size() / 4) + 1;
    for (const auto& candidate : candidates) {
        if (const std::size_t d = edit_distance(key, candidate); d < best_distance) {
            best_distance = d;
            best = std::string(candidate);
        }
    }
    return best;
}

}  // namespace kindred
