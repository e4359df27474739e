// core/atomic_file.h — writing a file so that readers see either the old version or the whole
// new one, never a torn one: bytes go to a temporary file in the same folder, are fsynced, the
// temporary is renamed over the target, and the folder is fsynced so the rename survives a crash. Every writer of checkpoints and model files uses
// this one function, so a crash or full disk mid-write never leaves a half file behind.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace kindred {

using ByteSink = std::function<void(std::span<const std::uint8_t>)>;

// Calls body(sink) to produce the content, then moves it into place. If anything throws (body
// included) or a system call fails, the temporary is removed, `path` is left untouched and the
// Error names `path`. The new file gets mode 0644 whatever the umask: checkpoints are meant to
// be read by other users and tools.
void write_file_atomically(const std::string& path, const std::function<void(const ByteSink&)>& body);
void write_file_atomically(const std::string& path, std::span<const std::uint8_t> bytes);
void write_file_atomically(const std::string& path, std::string_view text);

// Makes the entries of folder `path` (files created, renamed or removed in it) durable; the
// rename inside write_file_atomically already does this for its own folder.
void fsync_directory(const std::string& path);

}  // namespace kindred
