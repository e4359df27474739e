// tests/cli/run_kindred.h — runs the built `kindred` binary and captures what it printed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

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

// Runs kindred with `args` as its own process, stdout and stderr to `log`; `started(pid)` is
// called before waiting (a test may kill it). Returns the wait status.
inline int run_kindred_process(const std::vector<std::string>& args, const std::string& log, const std::function<void(pid_t)>& started = {}) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::vector<char*> argv;
        std::string binary = KINDRED_BINARY;
        argv.push_back(binary.data());
        std::vector<std::string> copy = args;
        for (auto& a : copy) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (std::freopen(log.c_str(), "w", stdout) == nullptr || std::freopen(log.c_str(), "a", stderr) == nullptr) ::_exit(127);
        ::execv(binary.c_str(), argv.data());
        ::_exit(127);
    }
    if (started) started(pid);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

}  // namespace kindred::testing
