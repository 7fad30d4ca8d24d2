// Server-Sent Events (the WHATWG HTML "event stream" format), as the server
// writes it: events with an id and data lines, comments as heartbeats, and
// the HTTP/1.1 chunk framing around them. No I/O here: the glue writes the
// bytes, once per message, shared by every subscriber of a kind.
#pragma once

#include <string>
#include <string_view>

namespace realtime::sse {

// "id: ID\n" (when id is not empty), one "data: LINE\n" per line of data (a
// line ends at CRLF, LF or CR, which the format cannot carry inside a data
// line; the browser joins the lines again with LF), then the blank line
// that dispatches the event. An id may not hold CR, LF or NUL: such an id
// is left out rather than let it end the field early.
std::string event(std::string_view id, std::string_view data);

// A comment line: the browser ignores it, proxies see traffic (heartbeat).
std::string comment(std::string_view text);

// body as one HTTP/1.1 chunk: "<hex size>\r\n" body "\r\n". An empty body
// would end the stream: it gives an empty string instead.
std::string chunk(std::string_view body);

// The last chunk of a chunked response (no trailers).
constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace realtime::sse
