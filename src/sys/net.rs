//! Listening sockets for our servers (the simulator, the publisher).
//!
//! Why not `TcpListener::bind`: its accept backlog is small, and a burst of new connections
//! (a thousand probes released at once, an exchange's clients reconnecting) overflows it. An
//! overflowed handshake is dropped and retried by the client's TCP after 200 ms to 1 s, which
//! shows up as latency that no one produced on purpose. 4096 is Linux's default `somaxconn`
//! cap; the kernel lowers it silently where the cap is smaller.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Accept backlog of our listeners.
pub const BACKLOG: u32 = 4096;

/// Bind and listen on `addr` with [`BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
