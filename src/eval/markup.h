// eval/markup.h — text made safe inside HTML and XML (the report's HTML, the charts' SVG): the
// five characters with markup meaning become entities, and the control characters XML 1.0 forbids
// (all below 0x20 but tab, newline and carriage return) are dropped, since no entity can carry them.
#pragma once

#include <string>
#include <string_view>

namespace kindred::eval {

std::string escape_markup(std::string_view text);

}  // namespace kindred::eval
