#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace barista::common {

/// The text of an errno value, thread-safe (std::strerror may share one buffer between threads).
inline std::string error_text(int error) {
  char buf[256];
  // The GNU strerror_r: returns the text, in `buf` or a static string.
  return ::strerror_r(error, buf, sizeof buf);
}

/// An error of the storage itself, which passes (a disk that fills up or fails for a while, a
/// remount, a lack of descriptors or memory), as opposed to one of a single file (permission, a
/// name that is not a batch): worth trying again, the same thing, later.
inline bool is_storage_fault(int error) {
  switch (error) {
    case EIO:
    case ENOSPC:
    case EDQUOT:
    case EROFS:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ETIMEDOUT:
    case ESTALE:
      return true;
    default:
      return false;
  }
}

inline bool is_storage_fault(const std::system_error& e) {
  const auto& category = e.code().category();
  return (category == std::generic_category() || category == std::system_category()) &&
         is_storage_fault(e.code().value());
}

}  // namespace barista::common
