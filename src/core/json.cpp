#include "core/json.h"

#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"

namespace kindred {

nlohmann::json parse_json(std::string_view text, const std::string& name, int max_depth) {
    using json = nlohmann::json;
    // keys[d]: the keys seen so far in the object open at depth d (one open object per depth).
    std::vector<std::unordered_set<std::string>> keys(static_cast<std::size_t>(max_depth) + 2);
    const auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
            if (depth >= max_depth) fail("{}: JSON nested deeper than {} levels", name, max_depth);
            if (event == json::parse_event_t::object_start) keys[static_cast<std::size_t>(depth) + 1].clear();
        } else if (event == json::parse_event_t::key) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!keys[static_cast<std::size_t>(depth)].insert(key).second) fail("{}: key '{}' appears twice", name, key);
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), callback);
    } catch (const json::exception& error) {
        fail("{}: invalid JSON: {}", name, error.what());
    }
}

nlohmann::json read_json_file(const std::string& path, std::uintmax_t max_bytes, int max_depth) {
    return parse_json(read_file_text(path, max_bytes), path, max_depth);
}

}  // namespace kindred
