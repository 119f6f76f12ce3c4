//! Kernel receive timestamps on the worker's sockets.
//!
//! Why: a first-token instant taken with `Instant::now()` when the worker's task notices the
//! bytes includes however long the task waited for a thread. On a loaded machine (1,000 open
//! streams, a simulator and a worker on two cores) that wait is most of the measurement error.
//! The kernel stamps every packet as it arrives (`SO_TIMESTAMPNS`); reading with `recvmsg`
//! returns the stamp of the last packet the read consumed, so the instant no longer depends on
//! user-space scheduling.
//!
//! [`StampedTcp`] is a tokio `TcpStream` whose reads go through `recvmsg` and note the stamp of
//! the latest read that returned data in an [`RxStamp`] shared with the worker. TLS sits above
//! it, so the stamp is that of the ciphertext that completed the decrypted bytes.
//!
//! The kernel stamps with `CLOCK_REALTIME`. The worker times everything else on the monotonic
//! clock, so a stamp is turned into a monotonic instant by its age, `now_monotonic -
//! (now_realtime - stamp)`. Only that age (microseconds to milliseconds) is measured on the realtime clock,
//! so a clock step or slew during a long stream does not move the instant. Where the kernel
//! gives no stamp (another OS, the option refused, a read without one), the read is marked
//! stampless and the worker falls back to the monotonic clock; each observation records which
//! source its instants came from.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// "The latest read carried no kernel stamp."
const NONE: i64 = i64::MIN;

/// The kernel receive stamp (realtime, ns since the Unix epoch) of a connection's latest read
/// that returned data.
#[derive(Debug)]
pub struct RxStamp {
    latest: AtomicI64,
}

impl Default for RxStamp {
    fn default() -> RxStamp {
        RxStamp {
            latest: AtomicI64::new(NONE),
        }
    }
}

impl RxStamp {
    /// The stamp of the latest read with data, if the kernel gave one.
    pub fn latest(&self) -> Option<i64> {
        Some(self.latest.load(Ordering::Acquire)).filter(|&v| v != NONE)
    }

    fn set(&self, stamp: Option<i64>) {
        self.latest.store(stamp.unwrap_or(NONE), Ordering::Release);
    }
}

/// The realtime clock now, ns since the Unix epoch (the kernel stamps' clock).
pub fn realtime_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A TCP stream whose reads record kernel receive stamps (see the module doc).
#[derive(Debug)]
pub struct StampedTcp {
    io: TcpStream,
    stamp: Arc<RxStamp>,
    /// Whether the kernel accepted `SO_TIMESTAMPNS` on this socket.
    kernel: bool,
}

impl StampedTcp {
    /// Wrap `io`, asking the kernel to stamp its received packets (`kernel`; false: plain
    /// reads, every instant from the monotonic clock, for comparison).
    pub fn new(io: TcpStream, kernel: bool) -> StampedTcp {
        let kernel = kernel && enable(&io);
        StampedTcp {
            io,
            stamp: Arc::new(RxStamp::default()),
            kernel,
        }
    }

    /// Where this stream's receive stamps go.
    pub fn stamp(&self) -> Arc<RxStamp> {
        self.stamp.clone()
    }

    /// Whether reads are kernel-stamped (false: every instant falls back to the monotonic clock).
    pub fn kernel_stamps(&self) -> bool {
        self.kernel
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }
}

#[cfg(target_os = "linux")]
fn enable(io: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            io.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn enable(_: &TcpStream) -> bool {
    false
}

/// One non-blocking `recvmsg` into `buf`: bytes read and the kernel stamp, if any.
#[cfg(target_os = "linux")]
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<(usize, Option<i64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one timespec control message (CMSG_SPACE(16) = 32 on 64-bit Linux), aligned.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is the stream's socket; the kernel writes at most iov_len bytes into buf (which
    // may be uninitialised: it is only written) and at most msg_controllen into control.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel filled in, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = Some(ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(target_os = "linux")]
        if this.kernel {
            use std::os::fd::AsRawFd;
            let fd = this.io.as_raw_fd();
            loop {
                std::task::ready!(this.io.poll_read_ready(cx))?;
                // SAFETY: recv_stamped only writes into the unfilled part, and exactly the `n`
                // bytes it reports are marked initialised below.
                let unfilled = unsafe { buf.unfilled_mut() };
                match this
                    .io
                    .try_io(tokio::io::Interest::READABLE, || recv_stamped(fd, unfilled))
                {
                    Ok((n, stamp)) => {
                        // SAFETY: the kernel wrote these n bytes.
                        unsafe { buf.assume_init(n) };
                        buf.advance(n);
                        if n > 0 {
                            this.stamp.set(stamp);
                        }
                        return Poll::Ready(Ok(()));
                    }
                    // readiness was cleared by try_io: poll_read_ready waits again
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.stamp.set(None);
        }
        r
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where a received-byte instant came from.
use sit_core::observation::RxClock;

/// Turns a connection's receive stamps into instants on the exchange's monotonic timeline (ns
/// since the request was handed over at `t0`).
#[derive(Debug)]
pub struct RxTimeline {
    t0: std::time::Instant,
    stamp: Option<Arc<RxStamp>>,
    /// The last kernel stamp converted and its instant: bytes from the same read get the same
    /// instant (two conversions of one stamp differ by the clocks' read jitter).
    last: Option<(i64, u64)>,
    /// Latest instant given out: instants never go backwards.
    floor: u64,
    kernel: u32,
    monotonic: u32,
}

impl RxTimeline {
    pub fn new(t0: std::time::Instant) -> RxTimeline {
        RxTimeline {
            t0,
            stamp: None,
            last: None,
            floor: 0,
            kernel: 0,
            monotonic: 0,
        }
    }

    /// The connection the response came on (unknown: every instant is monotonic).
    pub fn attach(&mut self, stamp: Option<Arc<RxStamp>>) {
        self.stamp = stamp;
    }

    /// The instant of bytes just handed to the worker: the kernel's stamp of the read that
    /// delivered them, or the monotonic clock now. Returns the instant and its source.
    pub fn received(&mut self) -> (u64, RxClock) {
        let mono = self.t0.elapsed().as_nanos() as u64;
        let stamp = self.stamp.as_ref().and_then(|s| s.latest());
        let kernel = stamp.and_then(|k| match self.last {
            Some((lk, at)) if lk == k => Some(at),
            _ => {
                let age = realtime_ns().checked_sub(k)?;
                // A negative age (the realtime clock stepped back) or a stamp from before the
                // request (a stale read) is not this response's arrival: fall back.
                let at = mono.checked_sub(u64::try_from(age).ok()?)?;
                let at = at.max(self.floor);
                self.last = Some((k, at));
                Some(at)
            }
        });
        let (at, src) = match kernel {
            Some(at) => {
                self.kernel += 1;
                (at, RxClock::Kernel)
            }
            None => {
                self.monotonic += 1;
                (mono.max(self.floor), RxClock::Monotonic)
            }
        };
        self.floor = at;
        (at, src)
    }

    /// The source of every instant given out so far (`None` before any).
    pub fn source(&self) -> Option<RxClock> {
        match (self.kernel, self.monotonic) {
            (0, 0) => None,
            (_, 0) => Some(RxClock::Kernel),
            (0, _) => Some(RxClock::Monotonic),
            _ => Some(RxClock::Mixed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Regression guard (issue 13): reads on a worker socket carry the kernel's receive stamp,
    /// and the stamp is when the bytes arrived, not when they were read.
    #[tokio::test]
    async fn reads_carry_the_kernels_receive_stamp_of_when_the_bytes_arrived() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let mut c = StampedTcp::new(c.unwrap(), true);
        let (mut s, _) = s.unwrap();
        if cfg!(not(target_os = "linux")) {
            assert!(!c.kernel_stamps());
            return;
        }
        assert!(c.kernel_stamps(), "Linux refused SO_TIMESTAMPNS");
        // The kernel switches receive timestamping on through deferred work when the first
        // socket asks for it: packets that arrive just before carry no stamp (the worker then
        // records them as monotonic). Wait until stamps flow before measuring.
        let t = Instant::now();
        let mut buf = [0u8; 16];
        loop {
            s.write_all(b".").await.unwrap();
            let _ = c.read(&mut buf).await.unwrap();
            if c.stamp().latest().is_some() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "no kernel stamps within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut tl = RxTimeline::new(Instant::now());
        tl.attach(Some(c.stamp()));
        s.write_all(b"hello").await.unwrap();
        let sent = realtime_ns();
        // read 50 ms after arrival: the stamp still says when the bytes came
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = c.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        let k = c.stamp().latest().expect("a kernel stamp");
        assert!((k - sent).abs() < 20_000_000, "stamp {k} vs sent {sent}");
        let read_at = realtime_ns();
        assert!(
            read_at - k >= 45_000_000,
            "stamp is the arrival, not the read"
        );
        let (at, src) = tl.received();
        assert_eq!(src, RxClock::Kernel);
        assert!(tl.t0.elapsed().as_nanos() as u64 - at >= 45_000_000);
        // the same read converts to the same instant
        assert_eq!(tl.received(), (at, RxClock::Kernel));
        assert_eq!(tl.source(), Some(RxClock::Kernel));
    }

    #[test]
    fn without_a_stamp_instants_are_monotonic_and_never_go_backwards() {
        let mut tl = RxTimeline::new(Instant::now());
        assert_eq!(tl.source(), None);
        let (a, s) = tl.received();
        assert_eq!(s, RxClock::Monotonic);
        let stamp = Arc::new(RxStamp::default());
        tl.attach(Some(stamp.clone()));
        // a stamp from long before the request: not this response's, falls back
        stamp.set(Some(realtime_ns() - 3_600_000_000_000));
        let (b, s) = tl.received();
        assert_eq!(s, RxClock::Monotonic);
        assert!(b >= a);
        stamp.set(Some(realtime_ns()));
        let (c, s) = tl.received();
        assert_eq!(s, RxClock::Kernel);
        assert!(c >= b);
        assert_eq!(tl.source(), Some(RxClock::Mixed));
    }
}
