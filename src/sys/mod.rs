//! What the oracle asks of the operating system, in one place: durable file writes, the
//! shutdown signal, clocks, CPU lanes, listening sockets, the service log and handing freed memory back.
//!
//! Why a layer of its own: the crash-safety rules (write aside, fsync, rename, fsync the
//! folder; create once) and the clocks are used by every layer above, and were written again
//! in each until they lived here. Nothing in `sys` knows what the oracle computes; it imports
//! only the standard library, tokio, `tracing` (the log) and `sit_core::time`.

pub mod clock;
pub mod durable;
pub mod lane;
pub mod log;
pub mod mem;
pub mod net;
pub mod shutdown;
