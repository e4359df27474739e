#include "eval/run_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace kindred::eval {
namespace {

constexpr std::uintmax_t kMaxJournalBytes = 1ull << 30;
constexpr std::uintmax_t kMaxConfigBytes = 16u << 20;

}  // namespace

std::string dump_json(const nlohmann::ordered_json& value) {
    return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Journal::~Journal() {
    if (fd_ >= 0) ::close(fd_);
}

std::vector<nlohmann::json> Journal::read() {
    std::vector<nlohmann::json> records;
    if (!std::filesystem::exists(path_)) return records;
    const std::string text = read_file_text(path_, kMaxJournalBytes);
    std::size_t start = 0;
    std::size_t line = 1;
    while (start < text.size()) {
        const std::size_t end = text.find('\n', start);
        if (end == std::string::npos) {
            // A torn last write: what the crash interrupted is dropped, and asked for again.
            std::filesystem::resize_file(path_, start);
            break;
        }
        records.push_back(parse_json(std::string_view(text).substr(start, end - start), fmt::format("{} line {}", path_, line)));
        if (!records.back().is_object()) fail("{} line {}: expected a JSON object", path_, line);
        start = end + 1;
        ++line;
    }
    return records;
}

void Journal::append(const nlohmann::ordered_json& record) {
    if (fd_ < 0) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("{}: cannot open for appending: {}", path_, std::strerror(errno));
    }
    const std::string line = dump_json(record) + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("{}: write failed: {}", path_, std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
    if (::fdatasync(fd_) != 0) fail("{}: fsync failed: {}", path_, std::strerror(errno));
}

void open_run_directory(const std::string& out, bool resume, const nlohmann::ordered_json& config) {
    namespace fs = std::filesystem;
    const std::string config_path = out + "/config.json";
    if (resume) {
        if (!fs::exists(config_path)) fail("{}: nothing to resume (no config.json)", out);
        const nlohmann::json stored = read_json_file(config_path, kMaxConfigBytes);
        for (const auto& [key, value] : config.items()) {
            if (key == "info") continue;
            const auto it = stored.find(key);
            // Compared as values: key order inside objects does not matter.
            if (it == stored.end() || *it != nlohmann::json::parse(dump_json(value))) {
                fail("{}: cannot resume: '{}' differs (the run has {}, this invocation {}); use a new --out for a different run",
                     config_path, key, it == stored.end() ? "nothing" : it->dump(), dump_json(value));
            }
        }
        return;
    }
    if (fs::exists(out) && !fs::is_empty(out)) fail("{}: already holds a run; add --resume to continue it, or choose a new --out", out);
    fs::create_directories(out);
    write_file_atomically(config_path, config.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

std::string journal_string(const nlohmann::json& record, const char* key, const std::string& where) {
    const auto it = record.find(key);
    if (it == record.end() || !it->is_string()) fail("{}: field '{}' missing or not a string", where, key);
    return it->get<std::string>();
}

}  // namespace kindred::eval
