#include "cli/verbose.h"

namespace kindred::cli {

bool& verbose() {
    static bool on = false;
    return on;
}

}  // namespace kindred::cli
