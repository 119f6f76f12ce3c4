//! Helpers shared by the integration tests: run the real `sit` binary (and its demo), show
//! what it said, copy a folder tree.

#![allow(dead_code)]

pub mod february;
pub mod net;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The address a started `sit serve` listens on and the line that says so: the first line of
/// its standard error ("sit serve: http://127.0.0.1:PORT (archive ...)"), read from `lines`.
pub fn served_address(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> (String, String) {
    let first = lines
        .next()
        .expect("sit serve says where it listens")
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (addr, first)
}

/// Run the real `sit` binary with `args`.
pub fn sit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sit"))
        .args(args)
        .output()
        .expect("run sit")
}

/// `sit --data DATA demo ARGS...` (the simulated market through `sit run`), which must
/// succeed.
pub fn demo(data: &Path, args: &[&str]) -> Output {
    let mut a = vec!["--data", data.to_str().unwrap(), "demo"];
    a.extend(args);
    let o = sit(&a);
    assert!(o.status.success(), "demo failed: {}", text(&o));
    o
}

/// Stdout and stderr of a run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copy a folder tree (a store, a bundle) to a new place.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every observation in the store at `data`, in time order.
pub fn stored_observations(data: &Path) -> Vec<sit_core::observation::Observation> {
    let store = sit::store::Store::open(data).unwrap();
    store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap().obs)
        .collect()
}

/// The committed golden audit bundle (tests/golden/bundle-2026-01-05), loaded.
pub fn golden_bundle() -> sit::audit::bundle::Bundle {
    sit::audit::bundle::Bundle::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bundle-2026-01-05"),
    )
    .unwrap()
}

/// A store (and its archive) in `data` holding a bundle's records, prices and commitments.
/// The golden bundle starts at seq 0 with a zero anchor, so the rebuilt records are
/// byte-identical to the bundled ones (checked).
pub fn store_from(
    b: &sit::audit::bundle::Bundle,
    data: &Path,
) -> (sit::store::Store, sit::archive::Archive) {
    let store = sit::store::Store::open(data).unwrap();
    for (_, hash, o) in &b.records {
        let mut one = [o.clone()];
        let h = store.append(&mut one).unwrap();
        assert_eq!(&h[0], hash, "rebuilt record seq {} differs", o.seq);
    }
    match &b.book {
        Some(book) => {
            store.import_book(book.entries()).unwrap();
        }
        None => {
            store
                .record_prices(
                    b.prices.iter().map(|(e, s)| (e.as_str(), s)),
                    i64::MIN,
                    |_, _| None,
                )
                .unwrap();
        }
    }
    let archive = sit::archive::Archive::for_data(data);
    for (c, r) in b.commitments.values() {
        if let Some(c) = c {
            archive.put_commitment(c).unwrap();
        }
        if let Some(r) = r {
            archive.put_reveal(r).unwrap();
        }
    }
    (store, archive)
}

/// The simulator in its own process, and a providers file for its first `n` endpoints with
/// prices in force from 2026-01-01 (the simulator prints today's prices).
pub struct Sim {
    pub child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sim(providers: &Path, n: usize, extra: &str) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_sit"))
        .args(["sim", "--for-secs", "300"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let toml = loop {
        let s = std::fs::read_to_string(&out).unwrap_or_default();
        if s.matches("[[endpoints.prices]]").count() >= 12 {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "sit sim did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut blocks: Vec<String> = toml
        .split("\n[[endpoints]]")
        .skip(1)
        .take(n)
        .map(|b| {
            let mut b = format!("\n[[endpoints]]{b}");
            let i = b.find("effective_from = \"").unwrap() + "effective_from = \"".len();
            let j = i + b[i..].find('"').unwrap();
            b.replace_range(i..j, "2026-01-01T00:00:00Z");
            b
        })
        .collect();
    blocks.push(extra.to_string());
    std::fs::write(providers, blocks.concat()).unwrap();
    Sim { child, _dir: dir }
}

/// Every file under `root` (but dot-files: locks, files being written), by relative path,
/// with its bytes.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
