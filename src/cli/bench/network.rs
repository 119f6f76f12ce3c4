//! `sit bench collect`: the probe network's data path against a real nats-server (started
//! here with JetStream in a temporary folder; `nats-server` must be on PATH).
//!
//! 1. Ingest: `observations` records of one vantage, signed in batches of
//!    [`ship::MAX_RECORDS`], are published to the stream first; then a collector (the real
//!    consume loop: read in stream order, check, one flushed store write with the cursor)
//!    drains them into a fresh sled store, timed from its start to the last write. The same batches checked and stored straight
//!    from memory (no NATS) are the comparison, in the same run.
//! 2. Latency: a worker's recorder (spool with flush), shipper and the collector, all real,
//!    at `rate` observations a second for `secs` seconds: from the moment the worker starts
//!    to record an observation to the moment the collector has flushed the batch that
//!    stored it.

use crate::network::collect::{consume, Collector, Incoming, Ingested};
use crate::network::{ship, WorkerEntry, Workers};
use crate::store::Store;
use sit_core::batch::{self, RecordText};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scratch folder removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch, String> {
        let p = std::env::temp_dir().join(format!("sit-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Scratch(p))
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct NatsServer {
    child: std::process::Child,
    url: String,
    _dir: Scratch,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats() -> Result<NatsServer, String> {
    let dir = Scratch::new("nats")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot start nats-server ({e}); install it (apt-get install nats-server)")
        })?;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("nats-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(NatsServer {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn worker(vantage: &str, key: &ed25519_dalek::SigningKey) -> WorkerEntry {
    WorkerEntry {
        vantage: vantage.to_string(),
        key: key.verifying_key(),
        key_path: Default::default(),
        region: None,
    }
}

/// `n` chained records of `vantage`, signed in batches.
fn batches(vantage: &str, key: &ed25519_dalek::SigningKey, n: usize) -> Vec<Vec<u8>> {
    let mut prev = batch::genesis_hex();
    let mut out = Vec::new();
    let mut chunk: Vec<RecordText> = Vec::new();
    let mut anchor = prev.clone();
    for seq in 0..n as u64 {
        let mut o = sit_core::observation::sample();
        o.worker = vantage.into();
        o.vantage = Some(vantage.into());
        o.seq = seq;
        o.at_ms = 1_767_571_200_000 + seq as i64;
        o.prev_hash = prev.clone();
        let text = serde_json::to_string(&o).expect("json");
        prev = sit_core::signing::hex(blake3::hash(text.as_bytes()).as_bytes());
        chunk.push(RecordText { seq, text });
        if chunk.len() == ship::MAX_RECORDS {
            out.push(batch::sign(vantage, "bench", key, &anchor, &chunk));
            anchor = prev.clone();
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        out.push(batch::sign(vantage, "bench", key, &anchor, &chunk));
    }
    out
}

/// CPU seconds (user + system) used so far by this process.
fn cpu_self() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// CPU seconds (user + system) used so far by process `pid` (from /proc; 0 where unreadable).
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the parenthesised name: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn quantiles(h: &hdrhistogram::Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

pub async fn collect_bench(observations: usize, rate: u64, secs: u64) -> Result<String, String> {
    let nats = start_nats()?;
    let e = |e: crate::network::Error| e.to_string();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let lat_key = ed25519_dalek::SigningKey::from_bytes(&[43; 32]);
    let workers = Workers(BTreeMap::from([
        ("bench".to_string(), worker("bench", &key)),
        ("lat".to_string(), worker("lat", &lat_key)),
    ]));
    let client = crate::network::connect(&nats.url, "sit-bench")
        .await
        .map_err(e)?;
    let js = async_nats::jetstream::new(client);
    crate::network::ensure_streams(&js, 1).await.map_err(e)?;
    let mut lines = vec![format!(
        "collect: nats-server {} on loopback (JetStream, file storage), batches of up to {} records",
        nats.url,
        ship::MAX_RECORDS
    )];

    // 1. ingest
    let docs = batches("bench", &key, observations);
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let t = Instant::now();
    let mut acks = Vec::new();
    for d in &docs {
        use async_nats::jetstream::message::PublishMessage;
        let id = batch::id(d);
        acks.push(
            js.send_publish(
                crate::network::obs_subject("bench"),
                PublishMessage::build()
                    .payload(d.clone().into())
                    .message_id(id),
            )
            .await
            .map_err(|e| e.to_string())?,
        );
    }
    for a in acks {
        a.await.map_err(|e| e.to_string())?;
    }
    lines.push(format!(
        "  published {} observations in {} batches ({:.1} MB) in {:.2} s",
        observations,
        docs.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    let dir = Scratch::new("collector")?;
    let clock: Arc<dyn crate::sys::clock::Clock> = Arc::new(crate::sys::clock::SystemClock);
    let store = Arc::new(Store::open(&dir.path().join("collector")).map_err(|e| e.to_string())?);
    let collector = Arc::new(Mutex::new(
        Collector::new(store.clone(), workers.clone(), clock.clone()).map_err(e)?,
    ));
    let stored = Arc::new(Mutex::new((0u64, None::<Instant>, 0u64)));
    let arrivals: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let on_stored: Arc<dyn Fn(&Ingested) + Send + Sync> = {
        let (stored, arrivals) = (stored.clone(), arrivals.clone());
        Arc::new(move |r: &Ingested| {
            let now = Instant::now();
            let mut s = stored.lock().unwrap_or_else(|p| p.into_inner());
            s.0 += r.stored;
            s.1 = Some(now);
            s.2 += 1;
            let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
            for (v, from, to) in &r.stored_ranges {
                if v == "lat" {
                    a.extend((*from..=*to).map(|seq| (seq, now)));
                }
            }
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (cpu0, nats_cpu0) = (cpu_self(), cpu_of(nats.child.id()));
    let t = Instant::now();
    let task = tokio::spawn(consume(
        js.clone(),
        dir.path().join("collector"),
        collector.clone(),
        stop_rx,
        on_stored,
        crate::network::collect::consumer_names(None),
        1,
    ));
    loop {
        let (n, last, writes) = *stored.lock().unwrap_or_else(|p| p.into_inner());
        if n >= observations as u64 {
            let took = last.expect("stored").duration_since(t).as_secs_f64();
            let (cpu, nats_cpu) = (cpu_self() - cpu0, cpu_of(nats.child.id()) - nats_cpu0);
            lines.push(format!(
                "  ingest from JetStream (read in stream order what has arrived, up to 256 batches; check; one flushed sled write with the cursor): {} observations in {:.2} s = {:.0} observations/s ({} store writes; CPU: collector {:.2} s = {:.1} us per observation, nats-server {:.2} s, of {:.2} s available on {} cores)",
                n,
                took,
                n as f64 / took,
                writes,
                cpu,
                cpu * 1e6 / n as f64,
                nats_cpu,
                took * cores() as f64,
                cores()
            ));
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(format!("ingest stalled at {n} of {observations}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // the same batches from memory into a fresh store (no NATS): the comparison
    {
        let dir2 = Scratch::new("direct")?;
        let store2 = Arc::new(Store::open(dir2.path()).map_err(|e| e.to_string())?);
        let mut c2 = Collector::new(store2, workers.clone(), clock.clone()).map_err(e)?;
        let msgs: Vec<Incoming> = docs
            .iter()
            .map(|d| Incoming {
                stream_seq: None,
                subject: crate::network::obs_subject("bench"),
                payload: d.clone().into(),
                msg_id: None,
                spool_depth: None,
            })
            .collect();
        let t = Instant::now();
        let mut checked = 0;
        for d in &docs {
            checked += batch::open(d, |v| workers.key_of(v))
                .map_err(|e| e.to_string())?
                .records
                .len();
        }
        let took = t.elapsed().as_secs_f64();
        lines.push(format!(
            "  checks alone (signed header, record hashes, parse, chain): {} observations in {:.2} s = {:.0} observations/s",
            checked,
            took,
            checked as f64 / took
        ));
        let t = Instant::now();
        let mut n = 0;
        for chunk in msgs.chunks(32) {
            n += c2.ingest(chunk).map_err(e)?.stored;
        }
        let took = t.elapsed().as_secs_f64();
        lines.push(format!(
            "  the same batches from memory (check, one flushed sled write per 32 batches): {} observations in {:.2} s = {:.0} observations/s",
            n,
            took,
            n as f64 / took
        ));
    }

    // 2. latency at `rate`
    let spool_dir = Scratch::new("spool")?;
    let spool = Arc::new(Store::open(spool_dir.path()).map_err(|e| e.to_string())?);
    let queue = ship::queue_from_spool(&spool).map_err(e)?;
    let q = queue.clone();
    let (recorder, rec_task) = crate::worker::recorder::Recorder::start_observed(
        spool.clone(),
        Some(Arc::new(move |o| q.push(o))),
    );
    let shipper = ship::Shipper {
        store: spool.clone(),
        queue,
        vantage: "lat".into(),
        key: Arc::new(lat_key),
        js: js.clone(),
        archive: crate::archive::Archive::new(spool_dir.path().join("archive")),
        clock: clock.clone(),
    };
    let (ship_stop, ship_rx) = tokio::sync::watch::channel(false);
    let ship_task = tokio::spawn(shipper.run(ship_rx, Duration::from_secs(30)));
    let total = (rate * secs) as usize;
    let starts: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let (r, s) = (recorder.clone(), starts.clone());
        tasks.spawn(async move {
            let mut o = sit_core::observation::sample();
            o.worker = "lat".into();
            o.vantage = Some("lat".into());
            let t0 = Instant::now();
            if let Ok(seq) = r.record(o).await {
                s.lock().unwrap_or_else(|p| p.into_inner()).insert(seq, t0);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let sent = t.elapsed().as_secs_f64();
    let t_wait = Instant::now();
    loop {
        let n = arrivals.lock().unwrap_or_else(|p| p.into_inner()).len();
        if n >= total || t_wait.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| e.to_string())?;
    let starts = starts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (seq, at) in &arrivals {
        if let Some(t0) = starts.get(seq) {
            h.saturating_record((at.duration_since(*t0).as_micros() as u64).max(1));
        }
    }
    lines.push(format!(
        "  end to end at {} observations/s for {} s ({} recorded in {:.2} s; {} stored at the collector): worker record (spool flush) -> sign, publish, JetStream ack -> read, check, flushed store: {}",
        rate,
        secs,
        total,
        sent,
        h.len(),
        quantiles(&h)
    ));
    let _ = ship_stop.send(true);
    let _ = ship_task.await;
    drop(recorder);
    let _ = rec_task.await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    Ok(lines.join("\n"))
}
