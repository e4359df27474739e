#include "infer/stop_strings.h"

#include <algorithm>

namespace kindred::infer {

StopStringFilter::StopStringFilter(std::vector<std::string> stop_strings) {
    for (auto& stop : stop_strings) {
        if (!stop.empty()) stop_strings_.push_back(std::move(stop));
    }
}

std::string StopStringFilter::push(std::string_view text) {
    if (stopped_) return {};
    pending_.append(text);

    // The earliest occurrence wins; among stops starting at the same place, the longest.
    std::size_t first = std::string::npos;
    for (const auto& stop : stop_strings_) {
        const std::size_t at = pending_.find(stop);
        if (at == std::string::npos) continue;
        if (at < first || (at == first && stop.size() > matched_.size())) {
            first = at;
            matched_ = stop;
        }
    }
    if (first != std::string::npos) {
        std::string shown = pending_.substr(0, first);
        pending_.clear();
        stopped_ = true;
        return shown;
    }

    // Hold the longest suffix that is a proper prefix of some stop string. Text before it cannot
    // begin a stop string: such an occurrence would itself be a longer suffix of that kind.
    std::size_t hold = 0;
    for (const auto& stop : stop_strings_) {
        const std::size_t longest = std::min(stop.size() - 1, pending_.size());
        for (std::size_t length = longest; length > hold; --length) {
            if (std::string_view(pending_).substr(pending_.size() - length) == std::string_view(stop).substr(0, length)) {
                hold = length;
                break;
            }
        }
    }
    std::string shown = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return shown;
}

std::string StopStringFilter::finish() {
    std::string rest;
    rest.swap(pending_);
    return rest;
}

}  // namespace kindred::infer
