// tests/cli/run_kindred.h — runs the built `kindred` binary and captures what it printed.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace kindred::testing {

struct CommandResult {
    int exit_code = -1;       // -1 when killed by a signal
    int signal = 0;           // the signal that killed it, 0 if none
    std::string output;       // stdout (stderr too when merge_stderr)
};

// `arguments` is appended to the binary's path as shell words; quote them yourself.
inline CommandResult run_kindred(const std::string& arguments, bool merge_stderr = false) {
    const std::string command = std::string(KINDRED_BINARY) + " " + arguments + (merge_stderr ? " 2>&1" : " 2>/dev/null");
    CommandResult result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 4096> buffer{};
    std::size_t read = 0;
    while ((read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), read);
    const int status = ::pclose(pipe);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
}

}  // namespace kindred::testing
