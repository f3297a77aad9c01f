// Reading what a batch leaves behind: results.jsonl and summary.json, checked against their
// documented shape (docs/reference.md#results, #summary) as they are parsed (a missing key or a
// wrong type is a HarnessError).
#include "tests/integration/harness/daemon_harness.hpp"

#include <simdjson.h>

#include <fstream>
#include <sstream>

namespace barista::itest {
namespace {

std::string required_string(simdjson::dom::object obj, std::string_view key,
                            std::string_view text) {
  std::string_view v;
  if (obj[key].get_string().get(v) != simdjson::SUCCESS) {
    throw HarnessError("no string \"" + std::string(key) + "\" in: " + std::string(text));
  }
  return std::string(v);
}

std::int64_t required_int(simdjson::dom::object obj, std::string_view key, std::string_view text) {
  std::int64_t v = 0;
  if (obj[key].get_int64().get(v) != simdjson::SUCCESS) {
    throw HarnessError("no integer \"" + std::string(key) + "\" in: " + std::string(text));
  }
  return v;
}

double required_number(simdjson::dom::object obj, std::string_view key, std::string_view text) {
  simdjson::dom::element e;
  if (obj[key].get(e) != simdjson::SUCCESS || !e.is_number()) {
    throw HarnessError("no number \"" + std::string(key) + "\" in: " + std::string(text));
  }
  double v = 0;  // get_double() converts integers too
  if (e.get_double().get(v) != simdjson::SUCCESS) {
    throw HarnessError("\"" + std::string(key) + "\" is out of range in: " + std::string(text));
  }
  return v;
}

std::optional<std::string> optional_string(simdjson::dom::object obj, std::string_view key,
                                           std::string_view text) {
  simdjson::dom::element e;
  if (obj[key].get(e) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::string_view v;
  if (e.get_string().get(v) != simdjson::SUCCESS) {
    throw HarnessError("\"" + std::string(key) + "\" is not a string in: " + std::string(text));
  }
  return std::string(v);
}

JobResult parse_with(simdjson::dom::parser& parser, std::string_view line) {
  simdjson::dom::object obj;
  if (parser.parse(line.data(), line.size()).get_object().get(obj) != simdjson::SUCCESS) {
    throw HarnessError("results.jsonl line is not a JSON object: " + std::string(line));
  }
  JobResult r;
  r.line = std::string(line);
  simdjson::dom::element id;
  if (obj["id"].get(id) != simdjson::SUCCESS) {
    throw HarnessError("no \"id\" in: " + r.line);
  }
  r.id_is_string = id.is_string();
  r.id = r.id_is_string ? std::string(std::string_view(id)) : simdjson::minify(id);
  r.status = required_string(obj, "status", line);
  r.attempts = required_int(obj, "attempts", line);
  r.ms = required_number(obj, "ms", line);
  r.output = optional_string(obj, "output", line);
  r.error = optional_string(obj, "error", line);
  std::int64_t throttled = 0;
  if (obj["throttled"].get(throttled) == simdjson::SUCCESS) {
    if (throttled <= 0) {
      throw HarnessError("\"throttled\" is there but not positive in: " + r.line);
    }
    r.throttled = throttled;
  }
  return r;
}

}  // namespace

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& file, std::string_view content) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out.flush()) {
    throw HarnessError("cannot write " + file.string());
  }
}

JobResult parse_result_line(std::string_view line) {
  simdjson::dom::parser parser;
  return parse_with(parser, line);
}

void for_each_result(const std::filesystem::path& file,
                     const std::function<void(const JobResult&)>& fn) {
  std::ifstream in(file, std::ios::binary);
  simdjson::dom::parser parser;
  std::string line;
  while (std::getline(in, line)) {
    fn(parse_with(parser, line));
  }
}

std::vector<JobResult> read_results(const std::filesystem::path& file) {
  std::vector<JobResult> out;
  for_each_result(file, [&](const JobResult& r) { out.push_back(r); });
  return out;
}

std::size_t count_lines(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::size_t n = 0;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      n += buf[i] == '\n' ? 1 : 0;
    }
  }
  return n;
}

Summary read_summary(const std::filesystem::path& file) {
  Summary s;
  s.text = slurp(file);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(s.text).get_object().get(obj) != simdjson::SUCCESS) {
    throw HarnessError(file.string() + " is not a JSON object: " + s.text);
  }
  s.batch = required_string(obj, "batch", s.text);
  s.pool = required_string(obj, "pool", s.text);
  s.state = required_string(obj, "state", s.text);
  s.jobs = required_int(obj, "jobs", s.text);
  s.ok = required_int(obj, "ok", s.text);
  s.failed = required_int(obj, "failed", s.text);
  s.timeout = required_int(obj, "timeout", s.text);
  s.cancelled = required_int(obj, "cancelled", s.text);
  s.invalid = required_int(obj, "invalid", s.text);
  simdjson::dom::element first;
  if (obj["first_error"].get(first) != simdjson::SUCCESS) {
    throw HarnessError("no \"first_error\" in: " + s.text);
  }
  if (!first.is_null()) {
    simdjson::dom::object fe;
    if (first.get_object().get(fe) != simdjson::SUCCESS) {
      throw HarnessError("\"first_error\" is neither null nor an object in: " + s.text);
    }
    s.has_first_error = true;
    s.first_error_id = required_string(fe, "id", s.text);
    s.first_error = required_string(fe, "error", s.text);
  }
  s.started = required_string(obj, "started", s.text);
  s.finished = required_string(obj, "finished", s.text);
  s.seconds = required_number(obj, "seconds", s.text);
  return s;
}

std::map<std::string, JobResult> by_id(const std::vector<JobResult>& results) {
  std::map<std::string, JobResult> out;
  for (const auto& r : results) {
    if (!out.emplace(r.id, r).second) {
      throw HarnessError("id '" + r.id + "' has more than one result: " + r.line);
    }
  }
  return out;
}

}  // namespace barista::itest
