//! Sockets: host sockets reached through the ring (AF_INET, AF_INET6,
//! AF_UNIX; TCP and UDP). Their traffic is not protected by conf: programs
//! that need confidentiality use TLS, as they would on any network.

pub mod scm;
pub mod socket;
pub mod unix;

pub use socket::Socket;
