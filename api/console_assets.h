// The operator console's files (api/console/ and Debian's Chart.js), built into allocation-api
// by cmake/EmbedAssets.cmake so the console needs nothing from the network or the disk at run
// time. Immutable; safe from any thread.
#ifndef ALLOCATION_RELAY_API_CONSOLE_ASSETS_H_
#define ALLOCATION_RELAY_API_CONSOLE_ASSETS_H_

#include <span>
#include <string_view>

namespace allocation_relay {

struct EmbeddedAsset {
  std::string_view path;          // as requested: "/console/", "/console/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// Every asset, in a fixed order; the views point into static storage.
std::span<const EmbeddedAsset> EmbeddedAssets();

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_API_CONSOLE_ASSETS_H_
