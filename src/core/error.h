// core/error.h — the one exception type for bad input and failed I/O.
// Every message names what was wrong and where (file, line, key or field);
// cli/ catches it once and prints it as a single sentence with a non-zero exit.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace kindred {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace kindred
