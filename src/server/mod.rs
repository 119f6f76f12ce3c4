//! The HTTP server exchanges settle on (axum), plus the human page: the read-only API over the
//! publication archive, and the certification challenge route when the oracle has its key.
//!
//! The server reads only the publication archive. It loads every listed record at start,
//! checks each one's hash and signature (a record that fails is not served, and `/healthz`
//! says why), and reloads when the log grows or a settlement file changes. Responses are
//! pre-rendered bytes held in an immutable [`snapshot::Snapshot`] behind an `Arc`, so serving
//! `latest` is a pointer copy and a header check: that is what keeps it close to nginx serving
//! a static file.
//!
//! - [`listen`]: the accept loop and its limits (connections, slow clients, request size);
//! - [`snapshot`]: what is served, loaded and checked;
//! - [`routes`]: the handlers, route metrics and the router;
//! - [`api`]: the API's JSON errors and request parsing;
//! - [`page`]: the human page and its chart.

pub mod api;
pub mod listen;
pub mod page;
pub mod routes;
pub mod snapshot;

use crate::archive::Archive;
use crate::certify::challenge::Challenger;
use bytes::Bytes;
use routes::{router, AppState, Metrics};
use sit_core::index::Methodology;
use sit_core::probes::Suite;
use snapshot::Snapshot;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The OpenAPI 3.1 description, served as is and checked against the server by a test.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A process that serves beside what it runs (`sit run --serve`) adds its own health and
/// metrics to the server's.
pub trait Service: Send + Sync {
    /// Reasons the service is unhealthy (none: healthy), and the facts behind the judgement.
    fn health(&self) -> (Vec<String>, serde_json::Value);
    /// Prometheus text lines.
    fn metrics(&self, out: &mut String);
}

/// [`snapshot::load`], with the page rendered from it.
pub fn load(archive: &Archive, suite: &Suite) -> Snapshot {
    let mut snap = snapshot::load(archive, suite);
    snap.page = Bytes::from(page::render(&snap, suite));
    snap
}

/// A running server; [`Running::shutdown`] stops it gracefully (in-flight requests finish).
pub struct Running {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    reload: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.reload.abort();
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// How often the server looks for new publications.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Bind `addr` and serve `archive`. Returns once listening.
pub async fn start(archive: Archive, addr: SocketAddr) -> std::io::Result<Running> {
    start_with(archive, addr, None, listen::Limits::default(), None).await
}

/// [`start`], with a running service's health and metrics added to `/healthz` and `/metrics`.
pub async fn start_with(
    archive: Archive,
    addr: SocketAddr,
    service: Option<Arc<dyn Service>>,
    limits: listen::Limits,
    challenger: Option<Arc<Challenger>>,
) -> std::io::Result<Running> {
    let suite = Suite::embedded();
    let methodology = Methodology::default();
    let methodology_json = Bytes::from(
        serde_json::to_vec_pretty(&serde_json::json!({
            "version": methodology.version,
            "hash": methodology.hash(),
            "parameters": methodology,
            "suite": {"version": suite.version, "hash": suite.hash},
            // every version this build can recompute, by hash: a record names its
            // methodology_hash, and an exchange looks its parameters up here
            "versions": sit_core::versions::Registry::embedded()
                .methodologies()
                .map(|(h, m)| serde_json::json!({"version": m.version, "hash": h, "parameters": m}))
                .collect::<Vec<_>>(),
            "signature": {
                "algorithm": "Ed25519",
                "signed_bytes": "RFC 8785 canonical JSON of the record without its `signature` member",
                "encoding": "128 lowercase hex digits",
            },
            "document": "index-methodology.md",
        }))
        .expect("json"),
    );
    let first = {
        let (a, s) = (archive.clone(), suite);
        tokio::task::spawn_blocking(move || load(&a, s))
            .await
            .map_err(std::io::Error::other)?
    };
    let state = Arc::new(AppState {
        challenger,
        service,
        archive: archive.clone(),
        snap: RwLock::new(Arc::new(first)),
        metrics: Metrics {
            counts: Default::default(),
            reloads: AtomicU64::new(0),
        },
        methodology_json,
        methodology,
        suite,
    });
    let listener = crate::sys::net::listen(addr)?;
    let addr = listener.local_addr()?;
    let reload = {
        let st = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            loop {
                tick.tick().await;
                let snap = st.snap();
                if archive.log_len() == snap.log_len
                    && crate::archive::settlements::mark(archive.root()) == snap.settle_mark
                {
                    continue;
                }
                let a = archive.clone();
                if let Ok(s) = tokio::task::spawn_blocking(move || load(&a, suite)).await {
                    *st.snap.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
                    st.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state);
    let task = tokio::spawn(listen::serve(listener, app, limits, rx));
    Ok(Running {
        addr,
        shutdown: tx,
        task,
        reload,
    })
}
