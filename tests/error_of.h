// tests/error_of.h — the message of the kindred::Error an action throws, for tests that check what
// an error says (file, line, field); "(no error)" when it throws none, so a phrase looked for in it
// is not found and the check fails.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace kindred::testing {

inline std::string error_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& error) {
        return error.what();
    }
    return "(no error)";
}

}  // namespace kindred::testing
