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
    if (model != "default") return model;
    const std::string path = kindred_home() + "/models/" + kDefaultModelFile;
    if (!std::filesystem::exists(path))
        fail("the default model is not installed at {}; run scripts/fetch-default-model", path);
    return path;
}

}  // namespace kindred
