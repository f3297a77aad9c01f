#include "daemon/batch/job_parser.hpp"

#include <charconv>

#include <fmt/format.h>

namespace barista::batch {

InputFormat format_for(std::string_view file_name) {
  constexpr std::string_view kJsonl = ".jsonl";
  return file_name.size() > kJsonl.size() && file_name.ends_with(kJsonl) ? InputFormat::kJsonl
                                                                         : InputFormat::kText;
}

JobParser::JobParser(InputFormat format, std::uint64_t max_job_bytes)
    : format_(format), max_job_bytes_(max_job_bytes) {}

// Lines come in order, mostly one apart: the next number's digits are the last one's plus one,
// with no division per digit. Formatting every id from scratch was a sixth of the feeder's
// time on a batch of short text lines.
std::string_view JobParser::line_number_id(std::uint64_t number) {
  if (number != 0 && number == last_number_ + 1 && !number_text_.empty()) {
    auto i = number_text_.size();
    while (i > 0 && number_text_[i - 1] == '9') {
      number_text_[--i] = '0';
    }
    if (i == 0) {
      number_text_.insert(number_text_.begin(), '1');
    } else {
      ++number_text_[i - 1];
    }
  } else {
    char buf[24];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, number);
    number_text_.assign(buf, ptr);
  }
  last_number_ = number;
  return number_text_;
}

bool JobParser::remember(std::string_view id) { return seen_.emplace(id).second; }

ParsedJob JobParser::parse(const Line& line) {
  ParsedJob job;
  if (line.oversize) {
    job.id = line_number_id(line.number);
    job.error =
        fmt::format("line of {} bytes exceeds max_job_bytes ({})", line.length, max_job_bytes_);
    return job;
  }
  if (line.text.empty()) {
    job.skip = true;
    return job;
  }
  if (format_ == InputFormat::kJsonl) {
    return parse_json(line);
  }
  job.valid = true;
  job.id = line_number_id(line.number);
  job.payload = line.text;
  return job;
}

ParsedJob JobParser::parse_json(const Line& line) {
  ParsedJob job;
  // Until we know better, the line number names the job (in results of malformed lines too).
  job.id = line_number_id(line.number);
  simdjson::dom::element doc;
  auto err = parser_.parse(line.text.data(), line.text.size(), false).get(doc);
  if (err) {
    job.error = fmt::format("malformed JSON: {}", simdjson::error_message(err));
    return job;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    job.error = R"(expected a JSON object with "id" and "payload")";
    return job;
  }
  simdjson::dom::element id;
  if (obj["id"].get(id) == simdjson::SUCCESS) {
    if (id.is_string()) {
      id_text_ = std::string_view(id);
    } else if (id.is_number()) {
      id_text_ = simdjson::minify(id);
    } else {
      job.error = "\"id\" must be a string or a number";
      return job;
    }
    job.id = id_text_;
  }
  simdjson::dom::element payload;
  if (obj["payload"].get(payload) != simdjson::SUCCESS) {
    job.error = "missing \"payload\"";
    return job;
  }
  if (payload.is_string()) {
    job.payload = std::string_view(payload);
  } else {
    payload_text_ = simdjson::minify(payload);
    job.payload = payload_text_;
  }
  simdjson::dom::element key;
  if (obj["key"].get(key) == simdjson::SUCCESS) {
    // A JSON string is valid UTF-8 already: simdjson refuses the line otherwise.
    if (!key.is_string()) {
      job.error = "\"key\" must be a string";
      return job;
    }
    job.key = std::string_view(key);
    if (auto problem = key_problem(job.key)) {
      job.error = std::move(*problem);
      job.key = {};
      return job;
    }
  }
  if (job.payload.size() > max_job_bytes_) {
    job.error = fmt::format("payload of {} bytes exceeds max_job_bytes ({})", job.payload.size(),
                            max_job_bytes_);
    job.payload = {};
    return job;
  }
  if (!remember(job.id)) {
    job.error = fmt::format("duplicate id '{}' in the batch", job.id);
    job.payload = {};
    return job;
  }
  job.valid = true;
  return job;
}

std::optional<std::string> key_problem(std::string_view key) {
  if (key.size() > kMaxKeyBytes) {
    return fmt::format("\"key\" of {} bytes is longer than {} bytes", key.size(), kMaxKeyBytes);
  }
  if (!simdjson::validate_utf8(key.data(), key.size())) {
    return std::string("\"key\" is not valid UTF-8");
  }
  return std::nullopt;
}

}  // namespace barista::batch
