#pragma once

// A spool pool's intake (intake.cpp): the input files of the batches being read. Private to the
// pool's files.

#include "daemon/batch/crash_journal.hpp"
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/line_reader.hpp"
#include "daemon/pool/pool.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace barista::pool {

/// A batch whose input is being read.
struct Pool::OpenBatch {
  std::shared_ptr<batch::Batch> batch;
  std::unique_ptr<batch::LineReader> reader;  // null when its input could not be opened
  std::unique_ptr<batch::JobParser> parser;
  std::unordered_map<std::string, std::uint32_t> recorded;  // results an earlier run recorded
  batch::CrashRecords crashes;
};

/// What the reader of the moment (one worker at a time, see Pool::read_for_worker) owns.
struct Pool::Intake {
  std::mutex mutex;  // held by the worker that reads; guards everything below
  std::vector<OpenBatch> open;
  JobChunk* spare = nullptr;      // read once the queue was full: the next reader's own
  std::size_t turn = 0;           // the open batch read next (round-robin)
  std::uint64_t generation = 0;   // of the settings last read from (0: none, the first reader does)
  std::size_t max_job_bytes = 0;  // of those settings
};

}  // namespace barista::pool
