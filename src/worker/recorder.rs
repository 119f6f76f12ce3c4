//! The recorder: the single writer between probe tasks and the store.
//!
//! Probe tasks send an observation and wait for the acknowledgement; the recorder appends
//! whatever has queued up as one batch, flushes it (inside [`Store::append`]), and only then
//! acknowledges. An attempt counts as recorded only after its ack, so a killed process loses no
//! acknowledged observation. Batching keeps the flush cost per observation small under load.

use crate::store::{Store, StoreError};
use sit_core::observation::Observation;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Ack = oneshot::Sender<Result<u64, String>>;

/// Called for each observation once it is durable (before its sender hears of it): how a
/// running service counts what it recorded, without a second path to the store.
pub type OnAck = Arc<dyn Fn(&Observation) + Send + Sync>;

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<(Observation, Ack)>,
}

impl Recorder {
    /// Start the recorder task on `store`. It ends when every `Recorder` clone is dropped.
    pub fn start(store: Arc<Store>) -> (Recorder, tokio::task::JoinHandle<Result<(), StoreError>>) {
        Recorder::start_observed(store, None)
    }

    /// [`Recorder::start`], calling `on_ack` for every observation made durable.
    pub fn start_observed(
        store: Arc<Store>,
        on_ack: Option<OnAck>,
    ) -> (Recorder, tokio::task::JoinHandle<Result<(), StoreError>>) {
        let (tx, mut rx) = mpsc::channel::<(Observation, Ack)>(4096);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                let (mut obs, acks): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match store.append(&mut obs) {
                    Ok(_) => {
                        for (o, a) in obs.iter().zip(acks) {
                            if let Some(f) = &on_ack {
                                f(o);
                            }
                            let _ = a.send(Ok(o.seq));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for a in acks {
                            let _ = a.send(Err(msg.clone()));
                        }
                        return Err(e);
                    }
                }
            }
            Ok(())
        });
        (Recorder { tx }, task)
    }

    /// Record one observation; returns its sequence number once it is durable.
    pub async fn record(&self, obs: Observation) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((obs, tx))
            .await
            .map_err(|_| "recorder stopped".to_string())?;
        rx.await.map_err(|_| "recorder stopped".to_string())?
    }
}
