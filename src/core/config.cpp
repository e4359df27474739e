// core/config.cpp — recipe tree over yaml-cpp nodes. yaml-cpp nodes are handles sharing their data,
// so walking down uses reset() (plain assignment would overwrite the node being walked from).
#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"

namespace kindred {
namespace {

std::vector<std::string> split_key(std::string_view key, std::string_view context) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = key.find('.', start);
        const std::string_view part = key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (part.empty()) fail("{}: bad key '{}' (empty segment)", context, key);
        parts.emplace_back(part);
        if (dot == std::string_view::npos) return parts;
        start = dot + 1;
    }
}

std::optional<std::size_t> parse_index(std::string_view segment) {
    if (segment.empty() || segment.size() > 9) return std::nullopt;  // 9 digits cannot overflow
    std::size_t value = 0;
    for (const char c : segment) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::size_t>(c - '0');
    }
    return value;
}

std::string join_key(const std::string& parent, std::string_view child) {
    return parent.empty() ? std::string(child) : parent + "." + std::string(child);
}

bool covers(std::string_view ancestor, std::string_view key) {
    return key == ancestor || (key.size() > ancestor.size() && key.starts_with(ancestor) && key[ancestor.size()] == '.');
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map: return "a mapping";
        case YAML::NodeType::Sequence: return "a sequence";
        case YAML::NodeType::Null: return "null";
        case YAML::NodeType::Scalar: return fmt::format("'{}'", node.Scalar());
        default: return "nothing";
    }
}

// Nodes a recipe may hold counting every use of an alias; yaml-cpp shares aliased nodes, so a
// few lines of nested aliases ("billion laughs") would otherwise make every walk take forever.
constexpr std::size_t kMaxRecipeNodes = 1u << 20;

// Rejects duplicate and non-scalar map keys, which yaml-cpp accepts silently (the later duplicate
// would be unreachable, so a recipe line would be ignored without a word).
void check_keys(const YAML::Node& node, const std::string& path, const std::string& source, std::size_t& budget) {
    if (budget == 0) fail("{}: more than {} values (counting each use of an alias)", source, kMaxRecipeNodes);
    --budget;
    if (node.IsMap()) {
        std::vector<std::pair<std::string, int>> seen;
        for (const auto& entry : node) {
            const int line = entry.first.Mark().line + 1;
            const std::string place = path.empty() ? "at the top level" : fmt::format("under '{}'", path);
            if (!entry.first.IsScalar()) fail("{} line {}: a key {} is not a plain name", source, line, place);
            const std::string& name = entry.first.Scalar();
            if (name.empty() || name.find('.') != std::string::npos) {
                fail("{} line {}: key '{}' {} is empty or contains '.', which separates key paths", source, line, name, place);
            }
            const auto earlier = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == name; });
            if (earlier != seen.end()) {
                fail("{} line {}: duplicate key '{}' (first at line {})", source, line, join_key(path, name), earlier->second);
            }
            seen.emplace_back(name, line);
            check_keys(entry.second, join_key(path, name), source, budget);
        }
    } else if (node.IsSequence()) {
        for (std::size_t i = 0; i < node.size(); ++i) check_keys(node[i], join_key(path, std::to_string(i)), source, budget);
    }
}

// Scalar text that reloads as the same number: shortest round-trip digits, YAML's spelling of inf/nan.
std::string number_text(double value) {
    if (std::isnan(value)) return ".nan";
    if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
    return fmt::format("{}", value);
}

template <typename T>
YAML::Node scalar_node(const T& value) {
    if constexpr (std::is_same_v<T, bool>) return YAML::Node(value ? "true" : "false");
    else if constexpr (std::is_same_v<T, double>) return YAML::Node(number_text(value));
    else if constexpr (std::is_integral_v<T>) return YAML::Node(fmt::format("{}", value));
    else return YAML::Node(value);
}

template <typename T>
struct IsVector : std::false_type {};
template <typename E>
struct IsVector<std::vector<E>> : std::true_type {};

template <typename T>
YAML::Node to_node(const T& value) {
    if constexpr (IsVector<T>::value) {
        YAML::Node sequence(YAML::NodeType::Sequence);
        for (const auto& element : value) sequence.push_back(scalar_node(element));
        sequence.SetStyle(YAML::EmitterStyle::Flow);
        return sequence;
    } else {
        return scalar_node(value);
    }
}

template <typename T>
struct Scalar;
template <>
struct Scalar<bool> {
    static constexpr const char* name = "a boolean (true/false)";
    static std::optional<bool> decode(const YAML::Node& node) {
        bool value = false;
        if (!YAML::convert<bool>::decode(node, value)) return std::nullopt;
        return value;
    }
};
template <>
struct Scalar<std::int64_t> {
    static constexpr const char* name = "an integer";
    static std::optional<std::int64_t> decode(const YAML::Node& node) {
        long long value = 0;  // yaml-cpp rejects trailing text ("1.5") and out-of-range values
        if (!YAML::convert<long long>::decode(node, value)) return std::nullopt;
        return static_cast<std::int64_t>(value);
    }
};
template <>
struct Scalar<int> {
    static constexpr const char* name = "an integer (32-bit)";
    static std::optional<int> decode(const YAML::Node& node) {
        const auto wide = Scalar<std::int64_t>::decode(node);
        if (!wide || *wide < std::numeric_limits<int>::min() || *wide > std::numeric_limits<int>::max()) return std::nullopt;
        return static_cast<int>(*wide);
    }
};
template <>
struct Scalar<double> {
    static constexpr const char* name = "a number";
    static std::optional<double> decode(const YAML::Node& node) {
        double value = 0;
        if (!YAML::convert<double>::decode(node, value)) return std::nullopt;
        return value;
    }
};
template <>
struct Scalar<std::string> {
    static constexpr const char* name = "a string";
    static std::optional<std::string> decode(const YAML::Node& node) {
        if (!node.IsScalar()) return std::nullopt;
        return node.Scalar();
    }
};

}  // namespace

Config::Config(YAML::Node root, std::string source) : root_(std::move(root)), source_(std::move(source)) {}

Config Config::load(const std::string& path) {
    // Recipes are a few kilobytes; the bound only stops a wrong path to a huge file.
    constexpr std::uintmax_t kMaxRecipeBytes = 4ull << 20;
    return parse(read_file_text(path, kMaxRecipeBytes), path);
}

Config Config::parse(std::string_view yaml, std::string source) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        fail("{} line {}: invalid YAML: {}", source, e.mark.line + 1, e.msg);
    }
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) fail("{}: a recipe must be a mapping of keys to values, got {}", source, describe(root));
    std::size_t budget = kMaxRecipeNodes;
    check_keys(root, "", source, budget);
    return Config(root, std::move(source));
}

void Config::apply_override(std::string_view assignment) {
    const std::string context = fmt::format("override '{}'", assignment);
    const std::size_t equals = assignment.find('=');
    if (equals == std::string_view::npos) fail("{}: expected key=value", context);
    const std::string_view key = assignment.substr(0, equals);
    YAML::Node value;
    try {
        value = YAML::Load(std::string(assignment.substr(equals + 1)));
    } catch (const YAML::Exception& e) {
        fail("{}: invalid YAML value: {}", context, e.msg);
    }
    std::size_t budget = kMaxRecipeNodes;
    check_keys(value, std::string(key), context, budget);
    set(key, value, context);
    overrides_.emplace_back(std::string(key), std::string(assignment));
}

void Config::apply_overrides(const std::vector<std::string>& assignments) {
    for (const auto& assignment : assignments) apply_override(assignment);
}

std::optional<YAML::Node> Config::find(std::string_view key) const {
    YAML::Node node = root_;
    for (const auto& part : split_key(key, source_)) {
        const YAML::Node& current = node;  // const lookups never insert
        YAML::Node next;
        if (current.IsSequence()) {
            const auto index = parse_index(part);
            if (!index || *index >= current.size()) return std::nullopt;
            next.reset(current[*index]);
        } else if (current.IsMap()) {
            const YAML::Node child = current[part];
            if (!child.IsDefined()) return std::nullopt;
            next.reset(child);
        } else {
            return std::nullopt;
        }
        node.reset(next);
    }
    return node;
}

void Config::set(std::string_view key, const YAML::Node& value, std::string_view context) {
    const auto parts = split_key(key, context);
    YAML::Node node = root_;
    std::string path;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        const bool last = i + 1 == parts.size();
        YAML::Node next;
        if (node.IsSequence()) {
            const auto index = parse_index(part);
            if (!index || *index >= node.size()) {
                fail("{}: '{}' is a sequence of {} elements; '{}' is not an index in it", context, path, node.size(), part);
            }
            if (last) {
                node[*index] = value;
                return;
            }
            next.reset(node[*index]);
        } else if (node.IsMap() || node.IsNull()) {
            if (last) {
                node[part] = value;
                return;
            }
            next.reset(node[part]);
            if (!next.IsDefined() || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);  // assigns into the tree
        } else {
            fail("{}: '{}' is {}, not a mapping, so it has no key '{}'", context, path, describe(node), part);
        }
        path = join_key(path, part);
        node.reset(next);
    }
}

template <typename T>
T Config::get(std::string_view key) {
    read_.emplace(key);
    const auto node = find(key);
    if (!node || node->IsNull()) fail("{}: missing required key '{}'", where(key), key);
    if constexpr (IsVector<T>::value) {
        using Element = typename T::value_type;
        if (!node->IsSequence()) fail_type(key, *node, fmt::format("a list of {}", Scalar<Element>::name));
        T values;
        for (std::size_t i = 0; i < node->size(); ++i) {
            const auto value = Scalar<Element>::decode((*node)[i]);
            if (!value) fail_type(fmt::format("{}.{}", key, i), (*node)[i], Scalar<Element>::name);
            values.push_back(*value);
        }
        return values;
    } else {
        const auto value = Scalar<T>::decode(*node);
        if (!value) fail_type(key, *node, Scalar<T>::name);
        return *value;
    }
}

template <typename T>
T Config::get(std::string_view key, T fallback) {
    const auto node = find(key);
    if (!node || node->IsNull()) {
        read_.emplace(key);
        set(key, to_node(fallback), where(key));
        return fallback;
    }
    return get<T>(key);
}

#define KINDRED_CONFIG_TYPE(T)                    \
    template T Config::get<T>(std::string_view); \
    template T Config::get<T>(std::string_view, T);
KINDRED_CONFIG_TYPE(bool)
KINDRED_CONFIG_TYPE(int)
KINDRED_CONFIG_TYPE(std::int64_t)
KINDRED_CONFIG_TYPE(double)
KINDRED_CONFIG_TYPE(std::string)
KINDRED_CONFIG_TYPE(std::vector<std::int64_t>)
KINDRED_CONFIG_TYPE(std::vector<double>)
KINDRED_CONFIG_TYPE(std::vector<std::string>)
#undef KINDRED_CONFIG_TYPE

bool Config::has(std::string_view key) const {
    const auto node = find(key);
    return node && !node->IsNull();
}

std::size_t Config::size(std::string_view key) const {
    const auto node = find(key);
    return node && node->IsSequence() ? node->size() : 0;
}

std::vector<std::string> Config::keys(std::string_view key) const {
    std::vector<std::string> names;
    const auto node = find(key);
    if (node && node->IsMap()) {
        for (const auto& entry : *node) names.push_back(entry.first.Scalar());
    }
    return names;
}

std::string Config::where(std::string_view key) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
        if (covers(it->first, key)) return fmt::format("override '{}'", it->second);
    }
    const auto node = find(key);
    if (node && node->Mark().line >= 0) return fmt::format("{} line {}", source_, node->Mark().line + 1);
    return source_;
}

void Config::fail_at(std::string_view key, std::string_view message) const {
    fail("{}: '{}' {}", where(key), key, message);
}

void Config::fail_type(std::string_view key, const YAML::Node& node, std::string_view expected) const {
    fail("{}: '{}' must be {}, got {}", where(key), key, expected, describe(node));
}

void Config::finish() const {
    struct Unknown {
        std::string key;
        std::string where;
    };
    std::vector<Unknown> unknown;
    const auto touched = [&](const std::string& path) {
        const auto it = read_.lower_bound(path + ".");
        return it != read_.end() && it->starts_with(path + ".");
    };
    // Reports the highest unread key of each branch: an unknown section is one error, not one per leaf.
    const auto walk = [&](const auto& self, const YAML::Node& node, const std::string& path, const YAML::Mark& mark) -> void {
        if (!path.empty() && read_.contains(path)) return;
        if (!path.empty() && (!touched(path) || !(node.IsMap() || node.IsSequence()))) {
            std::string place = where(path);
            if (!place.starts_with("override") && mark.line >= 0) place = fmt::format("{} line {}", source_, mark.line + 1);
            unknown.push_back({path, place});
            return;
        }
        if (node.IsMap()) {
            for (const auto& entry : node) self(self, entry.second, join_key(path, entry.first.Scalar()), entry.first.Mark());
        } else if (node.IsSequence()) {
            for (std::size_t i = 0; i < node.size(); ++i) self(self, node[i], join_key(path, std::to_string(i)), node[i].Mark());
        }
    };
    walk(walk, root_, "", root_.Mark());
    if (unknown.empty()) return;

    std::string message;
    for (const auto& u : unknown) {
        if (!message.empty()) message += "; ";
        message += fmt::format("unknown key '{}' in {}", u.key, u.where);
        if (const auto best = closest_key(u.key, read_)) message += fmt::format(" (did you mean '{}'?)", *best);
    }
    throw Error(message);
}

std::string Config::dump() const {
    YAML::Emitter out;
    out << root_;
    return std::string(out.c_str()) + "\n";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> previous(b.size() + 1), current(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
        }
        std::swap(previous, current);
    }
    return previous[b.size()];
}

}  // namespace kindred
