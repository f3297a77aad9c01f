#pragma once

// Opening a file strictly beneath a folder: the file the payload names must not be reachable
// through `..`, an absolute path or a symlink pointing out of the folder.

#include <string>

namespace barista_sha256 {

/// Opens `path` for reading relative to the folder `root_fd`, refusing anything that resolves
/// outside it. Returns a new O_CLOEXEC fd, or -errno: -EXDEV when the path leaves the folder,
/// -ENOENT when it does not exist, -ELOOP for a refused symlink. `path` must not contain NUL.
int open_beneath(int root_fd, const std::string& path);

}  // namespace barista_sha256
