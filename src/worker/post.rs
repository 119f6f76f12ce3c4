//! The worker's post-processing lane: generating probes, grading, tokenizing, costing and
//! compressing evidence, on one thread at `nice` 10 (see [`crate::sys::lane`] for why).

use crate::sys::lane::Lane;
use std::sync::OnceLock;

/// Run `f` on the post-processing lane and await its result.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static LANE: OnceLock<Lane> = OnceLock::new();
    LANE.get_or_init(|| Lane::start("sit-post", 19))
        .run(f)
        .await
}
