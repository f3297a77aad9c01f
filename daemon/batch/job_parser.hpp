#pragma once

#include "daemon/batch/line_reader.hpp"

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace barista::batch {

/// How a batch file's lines are read: by its name's extension.
enum class InputFormat { kText, kJsonl };

/// `.jsonl` -> kJsonl, anything else kText.
InputFormat format_for(std::string_view file_name);

/// The longest key a JSONL line may give its job.
inline constexpr std::size_t kMaxKeyBytes = 256;

/// Why `key` cannot be a job's key (longer than kMaxKeyBytes, or not UTF-8); nullopt when it can.
std::optional<std::string> key_problem(std::string_view key);

/// A line turned into a job, or into the reason it is `invalid`.
struct ParsedJob {
  bool skip = false;         ///< a blank line: not a job at all
  bool valid = false;        ///< false: `error` says why the job is invalid
  std::string_view id;       ///< valid until the next parse()
  std::string_view payload;  ///< valid until the next parse()
  std::string_view key;      ///< the JSONL line's "key"; empty when it gives none
  std::string error;
};

/// Turns batch lines into jobs as docs/reference.md#input-formats defines: text lines are
/// payloads with their line number as id; JSONL lines are objects with "id" (string or number;
/// the line number when absent, unique in the batch) and "payload" (a string as its text, any
/// other value as compact JSON), and an optional "key" (a string of at most kMaxKeyBytes). Lines
/// over max_job_bytes, malformed JSON and duplicate ids are invalid
/// (docs/reference.md#invalid-lines).
class JobParser {
 public:
  JobParser(InputFormat format, std::uint64_t max_job_bytes);

  /// `line.text` must be followed by simdjson::SIMDJSON_PADDING readable bytes (LineReader
  /// guarantees it). The result refers to storage owned by `line` or by the parser.
  ParsedJob parse(const Line& line);

 private:
  ParsedJob parse_json(const Line& line);
  std::string_view line_number_id(std::uint64_t number);
  bool remember(std::string_view id);

  InputFormat format_;
  std::uint64_t max_job_bytes_;
  simdjson::dom::parser parser_;
  std::string number_text_;        // the last line number's id
  std::uint64_t last_number_ = 0;  // and that number
  std::string id_text_;
  std::string payload_text_;
  std::unordered_set<std::string> seen_;  // JSONL ids, to refuse duplicates
};

}  // namespace barista::batch
