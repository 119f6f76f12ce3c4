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
