//! A precise one-shot timer for the simulator's injected first-token delays.
//!
//! Why: tokio's timer wheel has a 1 ms tick and rounds every deadline up to the next tick, so
//! an injected delay of 200 ms is served at 200-201 ms. The TTFT-accuracy benchmark measures the
//! worker against the injected delay, so the simulator must honour it to well under a
//! millisecond. One thread keeps the pending deadlines in a heap and sleeps on a channel with a
//! timeout until the earliest one (futex precision, tens of microseconds).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::oneshot;

struct Entry {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

fn sender() -> &'static Mutex<mpsc::Sender<Entry>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Entry>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Entry>();
        std::thread::Builder::new()
            .name("sit-sim-timer".into())
            .spawn(move || run(rx))
            .expect("spawn the simulator timer thread");
        Mutex::new(tx)
    })
}

fn run(rx: mpsc::Receiver<Entry>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Reverse(e) = heap.pop().expect("peeked");
            let _ = e.wake.send(());
        }
        let next = match heap.peek() {
            Some(Reverse(e)) => rx.recv_timeout(e.at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(e) => heap.push(Reverse(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Sleep until `at`, woken by the timer thread.
pub async fn sleep_until(at: Instant) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if at <= Instant::now() {
        return;
    }
    let (wake, woken) = oneshot::channel();
    let e = Entry {
        at,
        seq: SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        wake,
    };
    let sent = sender().lock().unwrap_or_else(|p| p.into_inner()).send(e);
    match sent {
        Ok(()) => {
            let _ = woken.await;
        }
        // no timer thread (cannot happen once spawned): fall back to tokio's timer
        Err(_) => tokio::time::sleep_until(at.into()).await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn wakes_in_deadline_order_and_never_early() {
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20] {
            let at = t0 + Duration::from_millis(ms);
            tasks.push(tokio::spawn(async move {
                super::sleep_until(at).await;
                (Instant::now() >= at, ms)
            }));
        }
        for t in tasks {
            let (on_time, ms) = t.await.unwrap();
            assert!(on_time, "woke before its {ms} ms deadline");
        }
    }
}
