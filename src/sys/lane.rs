//! CPU lanes: one named thread, optionally at low priority, running CPU-bound jobs for async
//! code and handing the results back.
//!
//! Why not tokio's blocking pool: under load it grows to hundreds of threads, each with the
//! same CPU share as an I/O thread and each building its own regex and tokenizer caches. A
//! first-token instant is taken when an I/O thread notices the bytes, so every CPU-bound job
//! that competes with the I/O threads as an equal is measurement error. A lane does the same
//! work on one warm thread, and at `nice` > 0 (Linux) a woken I/O thread preempts it at once.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A thread that runs jobs in submission order.
pub struct Lane {
    tx: std::sync::Mutex<mpsc::Sender<Job>>,
}

impl Lane {
    /// Start a lane named `name`; on Linux its thread runs at `nice` (0 = normal priority).
    pub fn start(name: &str, nice: i32) -> Lane {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                set_nice(nice);
                while let Ok(job) = rx.recv() {
                    // A panicking job fails its own caller (its result channel is dropped),
                    // not every later job.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("spawn a CPU lane thread");
        Lane {
            tx: std::sync::Mutex::new(tx),
        }
    }

    /// Run `f` on the lane and await its result.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sent = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        assert!(sent.is_ok(), "a lane's thread lives as long as the lane");
        rx.await.expect("lane jobs do not panic")
    }
}

/// `f` over `items` on every core (contiguous parts, one scoped thread each), results in the
/// order of `items`, so the outcome never depends on scheduling. Fewer than `min_per_thread`
/// items per thread run on the calling thread: a thread costs more than a small batch.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len() / min_per_thread.max(1))
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let part = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|sc| {
        let handles: Vec<_> = items
            .chunks(part)
            .map(|p| sc.spawn(move || p.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a par_map part does not panic"))
            .collect()
    })
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: these calls have no memory-safety preconditions; on Linux, pid 0 / a thread id
    // address the calling thread only. Failure leaves the default priority.
    unsafe {
        if nice >= 19 {
            // SCHED_IDLE: run only when no normal thread wants the CPU.
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
                return;
            }
        }
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) {}

#[cfg(test)]
mod tests {
    use super::{par_map, Lane};

    #[test]
    fn par_map_keeps_the_order_of_its_items() {
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(
            par_map(&v, 10, |x| x * 2),
            v.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(par_map(&v[..3], 10, |x| x + 1), [1, 2, 3]);
        assert!(par_map(&v[..0], 10, |x| *x).is_empty());
    }

    #[tokio::test]
    async fn jobs_run_in_order_and_return_their_results() {
        let lane = Lane::start("test-lane", 5);
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o1, o2) = (order.clone(), order.clone());
        let a = lane.run(move || {
            o1.lock().unwrap().push(1);
            2
        });
        let b = lane.run(move || {
            o2.lock().unwrap().push(2);
            "two".to_string()
        });
        assert_eq!(a.await, 2);
        assert_eq!(b.await, "two");
        assert_eq!(*order.lock().unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_the_lane_keeps_running() {
        let lane = std::sync::Arc::new(Lane::start("test-lane-panic", 0));
        let l = lane.clone();
        let failed = tokio::spawn(async move { l.run(|| -> u32 { panic!("job failed") }).await });
        assert!(failed.await.is_err(), "the caller sees the panic");
        assert_eq!(lane.run(|| 7).await, 7);
    }
}
