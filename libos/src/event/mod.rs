//! Waiting for many files at once: poll/select over host and enclave files,
//! epoll on a host epoll instance. Everything that can become ready later
//! (sockets, pipes, terminals, eventfd, timerfd) is a host fd, so the host
//! kernel does the waiting; enclave files (tmpfs, trusted files, devices)
//! are always ready, as regular files are on Linux.

pub mod epoll;
pub mod poll;
