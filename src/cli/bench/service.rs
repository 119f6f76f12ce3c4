//! `sit bench run`: what the oracle service itself costs. One compressed day of `sit run`
//! against the simulator in its own process (`sit sim`, as a provider is on other machines);
//! the service's CPU (user + system, this process: scheduler, worker, recorder, publication,
//! audit bundle) and the simulator's CPU are measured apart and given per 1,000 probes.

use crate::service::{self, Endpoints, RunOptions};
use crate::sys::clock::{Clock, SystemClock};
use sit_core::time::Date;
use std::io::BufRead;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of this process.
fn own_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU seconds (user + system) of another process, from /proc/PID/stat.
fn proc_cpu_s(pid: u32) -> Result<f64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')').ok_or("bad /proc stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().map_err(|e| e.to_string())?
        + f[12].parse::<f64>().map_err(|e| e.to_string())?;
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run_bench(hour_ms: u64, per_hour: u32) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("sit-bench-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut sim = Child(
        std::process::Command::new(exe)
            .args(["sim", "--for-secs", "7200"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the simulator process: {e}"))?,
    );
    // The simulator prints a providers file; it is complete when its process says so on
    // stderr, but stdout is all we read: take it up to the last endpoint's price table.
    let out = sim.0.stdout.take().ok_or("no simulator stdout")?;
    let mut toml = String::new();
    let mut lines = std::io::BufReader::new(out).lines();
    let mut endpoints = 0;
    let mut tail = 0;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line == "[[endpoints]]" {
            endpoints += 1;
        }
        if endpoints == 12 && line.starts_with("[[endpoints.prices]]") {
            tail = 1;
        } else if tail > 0 {
            tail += 1;
        }
        toml.push_str(&line);
        toml.push('\n');
        if tail > 0 && line.trim().is_empty() {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let providers = dir.join("providers.toml");
    std::fs::write(&providers, &toml).map_err(|e| e.to_string())?;
    crate::archive::keys::generate(&dir.join("keys")).map_err(|e| e.to_string())?;
    // Prices are in force from now: the simulated day is tomorrow.
    let start = Date::of_ms(SystemClock.now_ms()).succ();
    let opts = RunOptions {
        key: dir.join("keys").join(crate::archive::keys::PRIVATE_FILE),
        per_hour,
        start: Some(start),
        hour_ms: Some(hour_ms),
        until: Some(start.succ()),
        progress: false,
        print_acks: false,
        serve: None,
        limits: Default::default(),
        new_timeline: false,
        contracts: None,
        parties: None,
        network: None,
        demo_key: false,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (own0, sim0, t0) = (own_cpu_s(), proc_cpu_s(sim.0.id())?, Instant::now());
    let report = service::run(&dir.join("data"), Endpoints::File(providers), &opts)
        .await
        .map_err(|e| e.to_string())?;
    let (own1, sim1, wall) = (own_cpu_s(), proc_cpu_s(sim.0.id())?, t0.elapsed());
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    let attempts = report.summary.attempts.max(1) as f64;
    let own = own1 - own0;
    let simc = sim1 - sim0;
    Ok(format!(
        "service: one compressed day ({start}, 1 simulated hour = {hour_ms} ms, {per_hour} probes per endpoint, tier and hour) against 12 simulated endpoints in a separate process: {} scheduled probes, {} attempts recorded (retries included), {} records published, wall {:.1} s\n  sit run CPU {:.2} s = {:.3} s per 1,000 attempts (scheduler, worker, recorder, publication, audit bundle)\n  simulator CPU {:.2} s = {:.3} s per 1,000 attempts (measured apart)",
        report.probes + report.missed,
        report.summary.attempts,
        report.published.len(),
        wall.as_secs_f64(),
        own,
        own / attempts * 1000.0,
        simc,
        simc / attempts * 1000.0,
    ))
}
