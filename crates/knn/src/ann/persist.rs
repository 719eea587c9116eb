//! Saving and loading a [`BuiltIndex`]: a small self-describing file, no bincode.
//!
//! ```text
//! "IMGCANN1"            8-byte magic
//! header_len: u64 LE    then header_len bytes of JSON: kind, metric, seed, pca, rerank,
//!                       n_train, dim, data checksum, and the list of sections
//!                       (name, dtype u8|u32|f32, element count)
//! sections              the arrays, little-endian, back to back in header order
//! checksum: u64 LE      FNV-1a 64 of every byte before it
//! ```
//!
//! The training rows are referenced by checksum (FNV-1a 64 over `n`, `dim` and the pixels);
//! [`BuiltIndex::load`] takes them again and refuses other rows. The search-space copy is
//! recomputed on load (raw pixels, or the stored PCA applied to them). A truncated file, a bad
//! magic, a checksum mismatch or arrays that do not form a valid index are typed errors.

use std::path::Path;

use imgclass_core::{Subset, Values};

use super::hnsw::Hnsw;
use super::kdtree::KdTree;
use super::kmeans_tree::KMeansTree;
use super::{AnnError, AnnIndex, BuiltIndex, Metric, Pca, Space, Structure};

const MAGIC: &[u8; 8] = b"IMGCANN1";
const VERSION: u32 = 1;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    version: u32,
    kind: AnnIndex,
    #[serde(with = "file_metric")]
    metric: Metric,
    seed: u64,
    pca: Option<usize>,
    rerank: usize,
    n_train: usize,
    dim: usize,
    data_checksum: u64,
    sections: Vec<SectionInfo>,
}

/// The metric as index files spell it: the variant name (`"L1"`, `"L2"`), as files written
/// before the metric types were merged do; read in any case.
mod file_metric {
    use super::Metric;

    pub(super) fn serialize<S: serde::Serializer>(m: &Metric, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{m:?}"))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let name: String = serde::Deserialize::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SectionInfo {
    name: String,
    dtype: String,
    len: usize,
}

enum Array {
    U8(Vec<u8>),
    U32(Vec<u32>),
    F32(Vec<f32>),
}

/// FNV-1a 64 over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Checksum of training rows: FNV-1a 64 over `n` and `dim` (u64 LE) and the values (pixel
/// bytes, or each feature's f32 bits little-endian).
pub fn data_checksum(train: &Subset) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, &(train.len() as u64).to_le_bytes());
    h = fnv1a(h, &(train.dim() as u64).to_le_bytes());
    match train.values() {
        Values::Pixels(rows) => {
            for r in rows.iter() {
                h = fnv1a(h, r);
            }
        }
        Values::Features(rows) => {
            for r in rows.iter() {
                for v in r {
                    h = fnv1a(h, &v.to_le_bytes());
                }
            }
        }
    }
    h
}

fn sections_of(ix: &BuiltIndex) -> Vec<(String, Array)> {
    let mut s: Vec<(String, Array)> = Vec::new();
    if let Some(p) = &ix.pca {
        s.push(("pca.mean".into(), Array::F32(p.mean().to_vec())));
        s.push(("pca.components".into(), Array::F32(p.components().to_vec())));
        s.push(("pca.variances".into(), Array::F32(p.variances().to_vec())));
    }
    let kd = |s: &mut Vec<(String, Array)>, pre: &str, t: &KdTree| {
        s.push((format!("{pre}.split_dim"), Array::U32(t.split_dim.clone())));
        s.push((format!("{pre}.cut"), Array::F32(t.cut.clone())));
        s.push((format!("{pre}.a"), Array::U32(t.a.clone())));
        s.push((format!("{pre}.b"), Array::U32(t.b.clone())));
        s.push((format!("{pre}.perm"), Array::U32(t.perm.clone())));
    };
    match &ix.structure {
        Structure::Exact => {}
        Structure::KdTree(t) => kd(&mut s, "kd0", t),
        Structure::KdForest(f) => {
            for (i, t) in f.iter().enumerate() {
                kd(&mut s, &format!("kd{i}"), t);
            }
        }
        Structure::KMeans(t) => {
            s.push(("km.centers".into(), Array::F32(t.centers.clone())));
            s.push(("km.first".into(), Array::U32(t.first.clone())));
            s.push(("km.count".into(), Array::U32(t.count.clone())));
            s.push(("km.leaf".into(), Array::U8(t.leaf.clone())));
            s.push(("km.perm".into(), Array::U32(t.perm.clone())));
        }
        Structure::Hnsw(h) => {
            s.push(("hnsw.meta".into(), Array::U32(vec![h.entry, h.max_level as u32])));
            let mut stream = Vec::new();
            for node in &h.links {
                stream.push(node.len() as u32);
                for l in node {
                    stream.push(l.len() as u32);
                    stream.extend_from_slice(l);
                }
            }
            s.push(("hnsw.links".into(), Array::U32(stream)));
        }
    }
    s
}

impl BuiltIndex {
    /// The index as bytes in the format above.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sections = sections_of(self);
        let header = Header {
            version: VERSION,
            kind: self.kind,
            metric: self.metric,
            seed: self.seed,
            pca: self.pca.as_ref().map(Pca::n_components),
            rerank: self.rerank,
            n_train: self.train.len(),
            dim: self.train.dim(),
            data_checksum: data_checksum(&self.train),
            sections: sections
                .iter()
                .map(|(name, a)| {
                    let (dtype, len) = match a {
                        Array::U8(v) => ("u8", v.len()),
                        Array::U32(v) => ("u32", v.len()),
                        Array::F32(v) => ("f32", v.len()),
                    };
                    SectionInfo { name: name.clone(), dtype: dtype.into(), len }
                })
                .collect(),
        };
        // serialising plain structs of numbers and strings to JSON cannot fail
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for (_, a) in &sections {
            match a {
                Array::U8(v) => out.extend_from_slice(v),
                Array::U32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
                Array::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            }
        }
        let sum = fnv1a(FNV_OFFSET, &out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Writes the index to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), AnnError> {
        let path = path.as_ref();
        let io = |source| AnnError::Io { path: path.to_path_buf(), source };
        // atomic: write a sibling temporary file, then rename it over `path`, so a failure
        // never leaves a half-written index under the final name
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written =
            std::fs::write(&tmp, self.to_bytes()).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Reads an index written by [`BuiltIndex::save`]; `train` must be the rows it was built on.
    pub fn load(path: impl AsRef<Path>, train: &Subset) -> Result<Self, AnnError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|source| AnnError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, train)
    }

    /// Parses bytes from [`BuiltIndex::to_bytes`]; `train` must be the rows it was built on.
    pub fn from_bytes(bytes: &[u8], train: &Subset) -> Result<Self, AnnError> {
        let found = bytes.len() as u64;
        if bytes.len() < 16 {
            return Err(AnnError::Truncated { expected: 16, found });
        }
        if &bytes[..8] != MAGIC {
            return Err(AnnError::Corrupt {
                reason: "bad magic (not an imgclass ann index)".into(),
            });
        }
        let hlen = u64::from_le_bytes(le8(&bytes[8..16]));
        let hend = 16u64.saturating_add(hlen);
        if hend.saturating_add(8) > found {
            return Err(AnnError::Truncated { expected: hend.saturating_add(8), found });
        }
        let hend = hend as usize;
        let header: Header = serde_json::from_slice(&bytes[16..hend])
            .map_err(|e| AnnError::Corrupt { reason: format!("header: {e}") })?;
        let mut need = hend as u64 + 8;
        for s in &header.sections {
            let w = match s.dtype.as_str() {
                "u8" => 1u64,
                "u32" | "f32" => 4,
                other => {
                    return Err(AnnError::Corrupt { reason: format!("unknown dtype {other:?}") });
                }
            };
            need = need.saturating_add(w.saturating_mul(s.len as u64));
        }
        if need > found {
            return Err(AnnError::Truncated { expected: need, found });
        }
        if need < found {
            return Err(AnnError::Corrupt { reason: format!("{} trailing bytes", found - need) });
        }
        let body = bytes.len() - 8;
        let stored = u64::from_le_bytes(le8(&bytes[body..]));
        let computed = fnv1a(FNV_OFFSET, &bytes[..body]);
        if stored != computed {
            return Err(AnnError::ChecksumMismatch { stored, computed });
        }
        if header.version != VERSION {
            return Err(AnnError::Corrupt {
                reason: format!("unknown version {}", header.version),
            });
        }
        header.kind.validate()?;
        // the same bound as at build: a file cannot bring rows too long for u32 distances
        if train.dim() > super::MAX_DIM {
            return Err(AnnError::DimTooLarge { dim: train.dim(), max: super::MAX_DIM });
        }
        if train.len() != header.n_train || train.dim() != header.dim {
            return Err(AnnError::DataMismatch {
                expected: header.data_checksum,
                found: data_checksum(train),
            });
        }
        let found_sum = data_checksum(train);
        if found_sum != header.data_checksum {
            return Err(AnnError::DataMismatch {
                expected: header.data_checksum,
                found: found_sum,
            });
        }
        // split the sections
        let mut arrays: Vec<(String, Array)> = Vec::new();
        let mut off = hend;
        for s in &header.sections {
            let a = match s.dtype.as_str() {
                "u8" => {
                    let v = bytes[off..off + s.len].to_vec();
                    off += s.len;
                    Array::U8(v)
                }
                "u32" => {
                    let v = bytes[off..off + 4 * s.len]
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    off += 4 * s.len;
                    Array::U32(v)
                }
                _ => {
                    let v = bytes[off..off + 4 * s.len]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    off += 4 * s.len;
                    Array::F32(v)
                }
            };
            arrays.push((s.name.clone(), a));
        }
        let mut take = Sections(arrays);
        let n = header.n_train;
        let pca = match header.pca {
            None => None,
            Some(p) => {
                let pca = Pca::from_parts(
                    take.f32("pca.mean")?,
                    take.f32("pca.components")?,
                    take.f32("pca.variances")?,
                )?;
                if pca.n_components() != p || pca.dim() != header.dim {
                    return Err(AnnError::Corrupt { reason: "pca shape does not match".into() });
                }
                Some(pca.with_input(train.shape())?)
            }
        };
        let space = match header.kind {
            AnnIndex::Exact => Space::empty(),
            _ => Space::of(&super::search_rows(train, header.metric)?, pca.as_ref()),
        };
        let kd = |take: &mut Sections, pre: &str| -> Result<KdTree, AnnError> {
            let t = KdTree {
                split_dim: take.u32(&format!("{pre}.split_dim"))?,
                cut: take.f32(&format!("{pre}.cut"))?,
                a: take.u32(&format!("{pre}.a"))?,
                b: take.u32(&format!("{pre}.b"))?,
                perm: take.u32(&format!("{pre}.perm"))?,
            };
            t.validate(n, space.dim)?;
            Ok(t)
        };
        let structure = match header.kind {
            AnnIndex::Exact => Structure::Exact,
            AnnIndex::KdTree { .. } => Structure::KdTree(kd(&mut take, "kd0")?),
            AnnIndex::KdForest { trees, .. } => Structure::KdForest(
                (0..trees).map(|i| kd(&mut take, &format!("kd{i}"))).collect::<Result<_, _>>()?,
            ),
            AnnIndex::KMeansTree { .. } => {
                let t = KMeansTree {
                    dim: space.dim,
                    centers: take.f32("km.centers")?,
                    first: take.u32("km.first")?,
                    count: take.u32("km.count")?,
                    leaf: take.u8("km.leaf")?,
                    perm: take.u32("km.perm")?,
                };
                t.validate(n, space.dim)?;
                Structure::KMeans(t)
            }
            AnnIndex::Hnsw { m, .. } => {
                let meta = take.u32("hnsw.meta")?;
                let stream = take.u32("hnsw.links")?;
                if meta.len() != 2 {
                    return Err(AnnError::Corrupt { reason: "hnsw meta has wrong length".into() });
                }
                let h = Hnsw::new(m, parse_links(&stream, n)?, meta[0], meta[1] as usize);
                h.validate(n)?;
                Structure::Hnsw(h)
            }
        };
        Ok(BuiltIndex {
            kind: header.kind,
            metric: header.metric,
            seed: header.seed,
            train: train.clone(),
            pca,
            space,
            structure,
            rerank: header.rerank,
        })
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn parse_links(s: &[u32], n: usize) -> Result<Vec<Vec<Vec<u32>>>, AnnError> {
    let bad = || AnnError::Corrupt { reason: "hnsw link stream is malformed".into() };
    let mut pos = 0usize;
    let next = |pos: &mut usize| -> Result<u32, AnnError> {
        let v = *s.get(*pos).ok_or_else(bad)?;
        *pos += 1;
        Ok(v)
    };
    let mut links = Vec::with_capacity(n);
    for _ in 0..n {
        let layers = next(&mut pos)? as usize;
        if layers == 0 || layers > 64 {
            return Err(bad());
        }
        let mut node = Vec::with_capacity(layers);
        for _ in 0..layers {
            let c = next(&mut pos)? as usize;
            if c > s.len() - pos.min(s.len()) {
                return Err(bad());
            }
            node.push(s[pos..pos + c].to_vec());
            pos += c;
        }
        links.push(node);
    }
    if pos != s.len() {
        return Err(bad());
    }
    Ok(links)
}

struct Sections(Vec<(String, Array)>);

impl Sections {
    fn take(&mut self, name: &str) -> Result<Array, AnnError> {
        let i = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| AnnError::Corrupt { reason: format!("missing section {name}") })?;
        Ok(self.0.swap_remove(i).1)
    }
    fn wrong(name: &str) -> AnnError {
        AnnError::Corrupt { reason: format!("section {name} has the wrong dtype") }
    }
    fn u8(&mut self, name: &str) -> Result<Vec<u8>, AnnError> {
        match self.take(name)? {
            Array::U8(v) => Ok(v),
            _ => Err(Self::wrong(name)),
        }
    }
    fn u32(&mut self, name: &str) -> Result<Vec<u32>, AnnError> {
        match self.take(name)? {
            Array::U32(v) => Ok(v),
            _ => Err(Self::wrong(name)),
        }
    }
    fn f32(&mut self, name: &str) -> Result<Vec<f32>, AnnError> {
        match self.take(name)? {
            Array::F32(v) => Ok(v),
            _ => Err(Self::wrong(name)),
        }
    }
}
