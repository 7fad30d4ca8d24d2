#include "core/sse.h"

namespace realtime::sse {

std::string event(std::string_view id, std::string_view data) {
    std::string out;
    out.reserve(data.size() + id.size() + 16);

    if (!id.empty() && id.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos) {
        out += "id: ";
        out += id;
        out += '\n';
    }

    size_t start = 0;
    for (;;) {
        size_t end = data.find_first_of("\r\n", start);
        out += "data: ";
        out.append(data, start, end == std::string_view::npos ? std::string_view::npos : end - start);
        out += '\n';
        if (end == std::string_view::npos) {
            break;
        }
        // CRLF is one line end, not two
        start = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
    }

    out += '\n';
    return out;
}

std::string comment(std::string_view text) {
    std::string out = ":";
    // a comment is one line: anything after a line end would be a field
    out.append(text.substr(0, text.find_first_of("\r\n")));
    out += "\n\n";
    return out;
}

std::string chunk(std::string_view body) {
    static const char hex[] = "0123456789abcdef";

    if (body.empty()) {
        return std::string();
    }

    char size[sizeof(size_t) * 2];
    size_t n = 0;
    for (size_t v = body.size(); v; v >>= 4) {
        size[n++] = hex[v & 0xf];
    }

    std::string out;
    out.reserve(n + body.size() + 4);
    while (n) {
        out += size[--n];
    }
    out += "\r\n";
    out += body;
    out += "\r\n";
    return out;
}

}  // namespace realtime::sse
