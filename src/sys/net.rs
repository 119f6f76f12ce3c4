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

/// Raise this process's open-file soft limit to its hard limit (a hand-started server gets
/// the shell's soft limit, often 1024 or less, while the hard limit allows far more), and
/// return the soft limit then in force. A limit that cannot be raised stays as it was.
pub fn raise_open_file_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return u64::MAX;
    }
    if r.rlim_cur < r.rlim_max {
        // an unlimited hard limit cannot be the soft one for files (the kernel caps it)
        let want = r.rlim_max.min(1 << 20);
        let new = libc::rlimit {
            rlim_cur: want.max(r.rlim_cur),
            rlim_max: r.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            r.rlim_cur = new.rlim_cur;
        }
    }
    r.rlim_cur
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit_or_kept() {
        let mut before = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) };
        let now = super::raise_open_file_limit();
        assert!(now >= before.rlim_cur);
        assert!(now <= before.rlim_max);
    }
}
