// core/mapped_file.h — a read-only memory map of a whole file.
// Weights are read in place from the map (GGUF, safetensors), never copied whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

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

}  // namespace kindred
