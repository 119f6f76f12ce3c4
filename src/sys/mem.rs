//! Handing freed memory back to the operating system.
//!
//! Why: glibc's allocator keeps what a process frees for its next allocations, per thread
//! arena, and returns little of it on its own. A service that builds large transient
//! structures once a day (a day's window of observations, the price book's view, an audit
//! bundle) then holds the high-water mark of every arena as resident memory, and its resident
//! size creeps up day after day although its live heap does not (measured: BENCHMARKS.md,
//! "Resident memory over a compressed year"). [`release_free`] is called after each day's
//! publication.

/// Return the allocator's free memory to the operating system (glibc `malloc_trim`; nothing
/// elsewhere). Cheap next to a day's publication.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
