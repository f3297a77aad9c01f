#pragma once

// Whether the tests run in a sanitizer build (the asan and tsan presets), for the few checks
// that measure the process itself: memory use is then the sanitizer's (shadow memory,
// quarantine), and code runs several times slower.

namespace barista::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace barista::testing
