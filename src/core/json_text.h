// Compact JSON text of a jansson value, as the module sends it.
//
// jansson's own json_dumps() prints a real with 17 significant digits, so
// a client's 0.1 would reach the room as 0.10000000000000001. Here a real
// is printed with the fewest digits (15 to 17) that read back as the same
// double: what the client wrote, when it wrote a double's shortest form.
// Objects keep their key order; strings are escaped as json_quote() does.
#pragma once

#include <jansson.h>

#include <string>

namespace realtime {

// May throw std::bad_alloc.
std::string json_compact(const json_t* value);

// The shortest text of a finite double that reads back as d, always with
// a '.' or an exponent so it stays a real.
std::string json_real_text(double d);

}  // namespace realtime
