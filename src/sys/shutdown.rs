//! The shutdown signal of the long-running commands (`sit run`, `sit worker`, `sit collect`).

/// Resolves at Ctrl-C or SIGTERM (systemd's stop).
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A command whose output is cut short by its reader (`sit notice list | head`) ends quietly,
/// as a Unix tool does, instead of panicking on the broken pipe: SIGPIPE is given back its
/// default action. Only for commands that print and end; the services (`run`, `serve`,
/// `collect`, `worker`, `demo`, `sim`) keep it ignored, so a closed stdout never kills them
/// (their sockets write with MSG_NOSIGNAL either way).
pub fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default, before any thread relies on it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
