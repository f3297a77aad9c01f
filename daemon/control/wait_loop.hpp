#pragma once

// The answers that last (`barista submit --wait`, `barista wait`): a client that waits for its
// batch costs a file descriptor and a few hundred bytes, never a thread. A handler that answers
// a wait hands its connection over with a Watch; one thread then serves every waiting client,
// asking each Watch what to send at each progress tick, or at once when it wakes the loop.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace barista::control {

/// Wakes the wait loop for one watch: its answer is ready before the next tick. Safe to call
/// from any thread, at any time, also after the watch or the loop has gone.
using Wake = std::function<void()>;

/// One waiting client's answer, asked piece by piece on the wait loop's thread (never on two
/// threads at once).
class Watch {
 public:
  struct Step {
    std::string text;   ///< lines to send now (may be empty)
    bool last = false;  ///< the answer is complete: the connection closes once it is sent
  };

  Watch() = default;
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  virtual ~Watch() = default;

  /// Called once, before the first step(), with this watch's wake.
  virtual void start(const Wake& /*wake*/) {}
  /// What to send now: at once after start(), then at every progress tick and after each wake,
  /// while the client reads what it was sent (a client that does not is not asked for more).
  virtual Step step() = 0;
};

/// The thread that serves every waiting client.
class WaitLoop {
 public:
  /// How often a watch is asked for progress.
  static constexpr auto kTick = std::chrono::milliseconds(200);

  WaitLoop();
  WaitLoop(const WaitLoop&) = delete;
  WaitLoop& operator=(const WaitLoop&) = delete;
  ~WaitLoop();

  /// Takes over connection `fd` (its request answered so far) to send what `watch` says.
  void add(int fd, std::unique_ptr<Watch> watch);
  /// The clients waiting now.
  [[nodiscard]] std::size_t size() const;
  /// Ends every wait with `last_words` (an error line: the daemon stops), closes them all.
  void stop(const std::string& last_words);

 private:
  struct Shared;  // what a Wake reaches: outlives the loop while a Wake is held
  struct Client;
  using Clients = std::map<std::uint64_t, Client>;
  void loop();
  /// Takes the clients added and the wakes since the last turn; false once the loop stops.
  bool take_news(Clients& clients);
  /// Asks the clients that are due for their next step, sends what they have.
  void serve(Clients& clients);
  /// Waits until the next tick, a wake, or a client that can be sent more or has gone.
  void await(Clients& clients);

  std::uint64_t next_id_ = 0;  // the loop thread's own, as are next_tick_ and the clients
  std::chrono::steady_clock::time_point next_tick_;

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace barista::control
