//! Helpers shared by the integration tests: run the real `sit` binary, show what it said,
//! copy a folder tree.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run the real `sit` binary with `args`.
pub fn sit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sit"))
        .args(args)
        .output()
        .expect("run sit")
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
pub fn stored_observations(data: &Path) -> Vec<sit::observation::Observation> {
    let store = sit::store::Store::open(data).unwrap();
    store
        .scan(i64::MIN / 2, i64::MAX / 2)
        .map(|r| r.unwrap().obs)
        .collect()
}
