#include "daemon/batch/summary.hpp"

#include "daemon/common/json.hpp"

#include <iterator>

#include <fmt/format.h>

namespace barista::batch {

std::string Summary::json() const {
  std::string out = R"({"batch":)";
  common::append_json_string(out, batch);
  out += R"(,"pool":)";
  common::append_json_string(out, pool);
  out += R"(,"state":)";
  common::append_json_string(out, state);
  fmt::format_to(std::back_inserter(out),
                 R"(,"jobs":{},"ok":{},"failed":{},"timeout":{},"cancelled":{},"invalid":{})", jobs,
                 counts.ok, counts.failed, counts.timeout, counts.cancelled, counts.invalid);
  if (timed) {
    out += R"(,"first_error":)";
    if (first_error) {
      out += R"({"id":)";
      common::append_json_string(out, first_error->id);
      out += R"(,"error":)";
      common::append_json_string(out, first_error->error);
      out += "}";
    } else {
      out += "null";
    }
    out += R"(,"started":)";
    common::append_json_string(out, started);
    out += R"(,"finished":)";
    if (finished) {
      common::append_json_string(out, *finished);
    } else {
      out += "null";
    }
    out += seconds ? fmt::format(R"(,"seconds":{:.3f})", *seconds) : R"(,"seconds":null)";
  }
  if (read_all) {
    out += *read_all ? R"(,"read_all":true)" : R"(,"read_all":false)";
  }
  out += "}\n";
  return out;
}

}  // namespace barista::batch
