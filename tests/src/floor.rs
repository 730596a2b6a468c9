//! The information floor of a set of Automerge changes: the smallest of
//! three ways to write them down, which the bytes a sync puts on the
//! wire are measured against (issue 9's targets).

use std::io::Write;

use automerge::{Automerge, ChangeHash};

/// Three encodings of the changes made since some heads.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// The number of changes.
    pub changes: usize,
    /// The raw changes, one after another (what automerge's sync sends).
    pub raw: usize,
    /// An Automerge bundle of them (the document's columnar encoding).
    pub bundle: usize,
    /// The raw changes deflated (best compression).
    pub deflate: usize,
    /// The raw changes through zstd (level 19).
    pub zstd: usize,
}

impl Floor {
    /// The floor of the changes `doc` holds beyond `since`.
    pub fn since(doc: &Automerge, since: &[ChangeHash]) -> Floor {
        let changes = doc.get_changes(since);
        let raw: Vec<u8> = changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        let bundle = doc
            .bundle(changes.iter().map(|c| c.hash()))
            .map(|b| b.bytes().len())
            .unwrap_or(usize::MAX);
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflater.write_all(&raw).expect("deflating to memory");
        let deflate = deflater.finish().expect("deflating to memory").len();
        let zstd = zstd::encode_all(raw.as_slice(), 19)
            .expect("zstd to memory")
            .len();
        Floor {
            changes: changes.len(),
            raw: raw.len(),
            bundle,
            deflate,
            zstd,
        }
    }

    /// The smallest of the bundle, deflate and zstd.
    pub fn smallest(&self) -> usize {
        self.bundle.min(self.deflate).min(self.zstd)
    }
}
