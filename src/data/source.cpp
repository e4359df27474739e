#include "data/source.h"

#include "core/error.h"

namespace kindred::data {

void SourceStats::count_example(const Example& example) {
    ++splits[example.split].examples;
    for (const auto& label : example.source_labels) ++labels[label];
    for (const auto& emotion : example.emotions) ++emotions[emotion];
    for (const auto& message : example.messages) {
        for (const auto& strategy : message.strategies) ++strategies[strategy];
    }
}

void Diagnostics::report(const std::string& file, std::size_t line, const std::string& reason, const std::string& dropped) {
    if (policy_ == ErrorPolicy::Fail) fail("{}:{}: {}", file, line, reason);
    stats_.dropped.push_back({file, line, dropped.empty() ? reason : reason + "; dropped " + dropped});
}

}  // namespace kindred::data
