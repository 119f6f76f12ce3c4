//! The `sit` binary: everything lives in the library; see `sit::cli`.
fn main() {
    std::process::exit(sit::cli::main());
}
