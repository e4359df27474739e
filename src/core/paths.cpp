#include "core/paths.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace kindred {

std::string kindred_home() {
    if (const char* home = std::getenv("KINDRED_HOME"); home != nullptr && *home != '\0') return home;
    const char* user_home = std::getenv("HOME");
    if (user_home == nullptr || *user_home == '\0') fail("neither KINDRED_HOME nor HOME is set");
    return std::string(user_home) + "/.cache/kindred";
}

std::string resolve_model_path(const std::string& model) {
    struct Alias {
        const char* name;
        const char* file;
        const char* fetch;
    };
    static constexpr Alias aliases[] = {
        {"default", kDefaultModelFile, "scripts/fetch-default-model"},
        {"gemma3-270m", kGemma3_270mFile, "scripts/fetch-gemma3-270m"},
    };
    for (const Alias& alias : aliases) {
        if (model != alias.name) continue;
        const std::string path = kindred_home() + "/models/" + alias.file;
        if (!std::filesystem::exists(path))
            fail("the {} model is not installed at {}; run {}", alias.name, path, alias.fetch);
        return path;
    }
    return model;
}

}  // namespace kindred
