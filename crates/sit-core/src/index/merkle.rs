//! Merkle root over observation hashes (blake3), so a determination commits to exactly the
//! observations it used: adding, dropping or editing one changes the root.
//!
//! Leaves: `blake3(0x00 || leaf)`; inner nodes: `blake3(0x01 || left || right)`; an odd node at
//! the end of a level is promoted unchanged. The domain bytes stop a leaf from posing as a node.
//! The empty set's root is `blake3("sit-merkle-empty")`.

/// Root (lowercase hex) over leaves in the given order.
pub fn root(leaves: impl IntoIterator<Item = [u8; 32]>) -> String {
    let mut level: Vec<[u8; 32]> = leaves
        .into_iter()
        .map(|l| {
            let mut h = blake3::Hasher::new();
            h.update(&[0u8]);
            h.update(&l);
            *h.finalize().as_bytes()
        })
        .collect();
    if level.is_empty() {
        return blake3::hash(b"sit-merkle-empty").to_hex().to_string();
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            if let [l, r] = pair {
                let mut h = blake3::Hasher::new();
                h.update(&[1u8]);
                h.update(l);
                h.update(r);
                next.push(*h.finalize().as_bytes());
            } else {
                next.push(pair[0]);
            }
        }
        level = next;
    }
    blake3::Hash::from(level[0]).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_detects_add_drop_edit_reorder() {
        let leaves: Vec<[u8; 32]> = (0..5u8).map(|i| [i; 32]).collect();
        let r = root(leaves.clone());
        assert_eq!(r, root(leaves.clone()));
        let mut added = leaves.clone();
        added.push([9; 32]);
        let mut dropped = leaves.clone();
        dropped.remove(2);
        let mut edited = leaves.clone();
        edited[3][0] ^= 1;
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        for other in [added, dropped, edited, swapped] {
            assert_ne!(r, root(other));
        }
        assert_eq!(root(Vec::new()).len(), 64);
        assert_ne!(root(vec![[0; 32]]), root(Vec::new()));
    }
}
