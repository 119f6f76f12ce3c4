//! Kill test: every observation the recorder acknowledged survives a SIGKILL, and the hash
//! chain on disk is intact (no torn batch, no gap).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn acknowledged_observations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sit"))
        .arg("--data")
        .arg(&data)
        .args(["demo", "--days", "1", "--hour-ms", "300", "--print-acks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 300 {
        let line = lines.next().expect("demo ended before 300 acks").unwrap();
        if let Some(seq) = line.strip_prefix("ack ") {
            acked.push(seq.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no final flush
    child.wait().unwrap();

    let store = sit::store::Store::open(&data).unwrap();
    let mut obs: Vec<_> = store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap())
        .collect();
    obs.sort_by_key(|s| s.obs.seq);
    let seqs: std::collections::BTreeSet<u64> = obs.iter().map(|s| s.obs.seq).collect();
    for a in &acked {
        assert!(seqs.contains(a), "acknowledged observation {a} lost");
    }
    // contiguous from 0, chained, and the head agrees
    for (i, s) in obs.iter().enumerate() {
        assert_eq!(s.obs.seq, i as u64, "gap in the chain");
        assert_eq!(
            s.hash,
            *blake3::hash(&serde_json::to_vec(&s.obs).unwrap()).as_bytes()
        );
        if i > 0 {
            assert_eq!(
                s.obs.prev_hash,
                blake3::Hash::from(obs[i - 1].hash).to_hex().to_string()
            );
        }
    }
    assert_eq!(store.head().unwrap().0, obs.len() as u64);
}
