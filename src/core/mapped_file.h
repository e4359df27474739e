// core/mapped_file.h — reading whole files: a read-only memory map for weights (GGUF,
// safetensors; read in place, never copied whole) and a bounded copy for the small text files
// parsers take as strings (JSON, YAML), so that a wrong path to a huge file fails by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kindred {

class MappedFile {
public:
    MappedFile() = default;
    // Throws Error naming the path when the file cannot be opened or mapped.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }
    std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
    const std::string& path() const { return path_; }

private:
    void release();
    std::string path_;
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

// Drops the whole pages inside [data, data + bytes) of a read-only file mapping from this process's
// resident set (madvise MADV_DONTNEED): a later read faults them in again from the file. Lets a
// loader that has converted a mapped tensor into an owned copy stop paying for both. A no-op for
// ranges smaller than a page.
void release_mapped_pages(const void* data, std::size_t bytes);

// The whole file as a string; throws Error naming the path when it cannot be read or holds
// more than max_bytes.
std::string read_file_text(const std::string& path, std::uintmax_t max_bytes);

}  // namespace kindred
