//! The HTTP server exchanges settle on (axum), plus the human page: the read-only API over the
//! publication archive, and, when the oracle has its key, its two write routes: the
//! certification challenge and registered parties' signed submissions (`POST /v1/submissions`,
//! [`crate::oversight::Intake`]).
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
//! - [`oversight`]: the register's read routes (disputes, attestations, consultations,
//!   parties) and the archived audit bundles;
//! - [`page`]: the human page and its chart.

pub mod api;
pub mod listen;
pub mod oversight;
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

/// How many connections the server holds at once, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The cap in force.
    pub max_connections: usize,
    /// The cap asked for (`--max-connections`).
    pub asked: usize,
    /// The process's open-file limit, after raising it to the hard limit.
    pub open_file_limit: u64,
}

impl Capacity {
    /// The cap for `asked` under `open_file_limit`: a quarter of the descriptors (at least 64)
    /// stay for everything else the process opens (the store, the archive, probes), so that
    /// connections never use the last descriptor and `accept` never fails for want of one.
    pub fn of(asked: usize, open_file_limit: u64) -> Capacity {
        let reserve = (open_file_limit / 4).max(64);
        let room = open_file_limit.saturating_sub(reserve).max(1);
        Capacity {
            max_connections: asked.min(usize::try_from(room).unwrap_or(usize::MAX)),
            asked,
            open_file_limit,
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        if self.max_connections < self.asked {
            format!(
                "up to {} connections, not the {} asked: the open-file limit is {} (raise it with `ulimit -n` or the unit's LimitNOFILE=)",
                self.max_connections, self.asked, self.open_file_limit
            )
        } else {
            format!(
                "up to {} connections (open-file limit {})",
                self.max_connections, self.open_file_limit
            )
        }
    }
}

/// A running server; [`Running::shutdown`] stops it gracefully (in-flight requests finish).
pub struct Running {
    pub addr: SocketAddr,
    /// The connection cap in force.
    pub capacity: Capacity,
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
    start_with(archive, addr, None, listen::Limits::default(), None, None).await
}

/// [`start`], with a running service's health and metrics added to `/healthz` and `/metrics`.
pub async fn start_with(
    archive: Archive,
    addr: SocketAddr,
    service: Option<Arc<dyn Service>>,
    mut limits: listen::Limits,
    challenger: Option<Arc<Challenger>>,
    intake: Option<Arc<crate::oversight::Intake>>,
) -> std::io::Result<Running> {
    let capacity = Capacity::of(
        limits.max_connections,
        crate::sys::net::raise_open_file_limit(),
    );
    limits.max_connections = capacity.max_connections;
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
        intake,
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
                    && crate::archive::notices::count(archive.root()) == snap.notice_count
                    && crate::archive::register::mark(archive.root()) == snap.register_mark
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
        capacity,
        shutdown: tx,
        task,
        reload,
    })
}

#[cfg(test)]
mod tests {
    use super::Capacity;

    #[test]
    fn the_connection_cap_stays_below_the_open_file_limit() {
        // the finding: 1024 asked under a limit of 256 starved the server
        let c = Capacity::of(1024, 256);
        assert_eq!(c.max_connections, 192);
        assert!(
            c.describe().contains("not the 1024 asked"),
            "{}",
            c.describe()
        );
        assert_eq!(Capacity::of(1024, 1 << 20).max_connections, 1024);
        assert_eq!(Capacity::of(1024, 1024).max_connections, 768);
        assert_eq!(Capacity::of(10, 20).max_connections, 1);
    }
}
