// Private: the process-wide self-pipe that carries signals to the one loop handling them.
#pragma once

namespace netloop {
class EventLoop;
void release_signal_pipe(EventLoop* owner) noexcept;
}  // namespace netloop
