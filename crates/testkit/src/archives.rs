//! Archive fixtures for tests: a tiny valid CIFAR-10-layout `.tar.gz`, plain `.tar.gz` of
//! given files, and malicious archives (`../` entry, absolute path, symlink, hard link,
//! device, fifo) built from raw tar headers, since `tar::Builder` refuses to write them.

use std::io::Write;

use imgclass_core::rng::SplitMix64;
use tar::{EntryType, Header};

/// Bytes per CIFAR-10 record: one label byte then 3 x 32 x 32 pixel bytes.
pub const CIFAR10_RECORD: usize = 1 + 3 * 32 * 32;

/// The class names file of CIFAR-10 (`batches.meta.txt`), one name a line, in label order,
/// as the official archive has it.
pub const CIFAR10_META: &str =
    "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";

/// One generated CIFAR-10 record set: labels and channel-major pixels, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarRecords {
    /// One label (0..9) per record.
    pub labels: Vec<u8>,
    /// `labels.len() * 3072` pixel bytes, record after record.
    pub pixels: Vec<u8>,
}

impl CifarRecords {
    /// `n` records with labels `(offset + i) % 10` and pixels from a SplitMix64 seeded
    /// with `seed`.
    pub fn generate(n: usize, offset: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let labels = (0..n).map(|i| ((offset + i) % 10) as u8).collect();
        let pixels = (0..n * 3072).map(|_| (rng.next_u64() >> 56) as u8).collect();
        Self { labels, pixels }
    }

    /// The records in the CIFAR-10 binary file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.labels.len() * CIFAR10_RECORD);
        for (i, &l) in self.labels.iter().enumerate() {
            out.push(l);
            out.extend_from_slice(&self.pixels[i * 3072..(i + 1) * 3072]);
        }
        out
    }
}

/// The seven files of a CIFAR-10 `cifar-10-batches-bin/` folder with `train_per_batch`
/// records in each of the five training batches and `n_test` in `test_batch.bin`:
/// `(file name, contents)`. Batch `b` (1..=5) is generated with seed `seed + b`, the test
/// batch with `seed + 6`, so a test can regenerate any file as its oracle.
pub fn cifar10_files(train_per_batch: usize, n_test: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for b in 1..=5u64 {
        let recs = CifarRecords::generate(
            train_per_batch,
            (b as usize - 1) * train_per_batch,
            seed.wrapping_add(b),
        );
        files.push((format!("data_batch_{b}.bin"), recs.to_bytes()));
    }
    let test = CifarRecords::generate(n_test, 0, seed.wrapping_add(6));
    files.push(("test_batch.bin".to_string(), test.to_bytes()));
    files.push(("batches.meta.txt".to_string(), CIFAR10_META.as_bytes().to_vec()));
    files
}

/// A `.tar.gz` in the official layout: a `cifar-10-batches-bin/` directory entry, then the
/// files of [`cifar10_files`] inside it.
pub fn cifar10_tar_gz(train_per_batch: usize, n_test: usize, seed: u64) -> Vec<u8> {
    let files = cifar10_files(train_per_batch, n_test, seed);
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = Header::new_gnu();
    dir.set_entry_type(EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    set_name(&mut dir, b"cifar-10-batches-bin/");
    dir.set_cksum();
    append(&mut b, &dir, &[]);
    for (name, data) in &files {
        let h = file_header(format!("cifar-10-batches-bin/{name}").as_bytes(), data.len());
        append(&mut b, &h, data);
    }
    gzip(&finish(b))
}

/// A `.tar.gz` holding the given regular files (paths relative, `/`-separated).
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        append(&mut b, &file_header(name.as_bytes(), data.len()), data);
    }
    gzip(&finish(b))
}

/// A kind of unsafe archive entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malicious<'a> {
    /// A regular file whose path climbs out, e.g. `"../escaped.txt"`.
    ParentDir(&'a str),
    /// A regular file with an absolute path, e.g. `"/tmp/x/escaped.txt"`.
    Absolute(&'a str),
    /// A symbolic link `name -> target`.
    Symlink {
        /// The link's path in the archive.
        name: &'a str,
        /// Where it points.
        target: &'a str,
    },
    /// A hard link `name => target`.
    HardLink {
        /// The link's path in the archive.
        name: &'a str,
        /// The file it links to.
        target: &'a str,
    },
    /// A character device node.
    CharDevice(&'a str),
    /// A named pipe.
    Fifo(&'a str),
}

/// Contents written by every malicious entry that carries data, so a test can search for it.
pub const ESCAPE_PAYLOAD: &[u8] = b"imgclass escape payload\n";

/// A `.tar.gz` with one harmless file `ok/first.txt` (so a test sees that already-extracted
/// files are cleaned up), then the malicious entry, then another harmless `ok/last.txt`.
/// For a link, a second entry writes [`ESCAPE_PAYLOAD`] through the link's name
/// (`name/escaped.txt`), as a real attack would.
pub fn malicious_tar_gz(kind: Malicious<'_>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, &file_header(b"ok/first.txt", 6), b"first\n");
    match kind {
        Malicious::ParentDir(name) | Malicious::Absolute(name) => {
            append(&mut b, &file_header(name.as_bytes(), ESCAPE_PAYLOAD.len()), ESCAPE_PAYLOAD);
        }
        Malicious::Symlink { name, target } | Malicious::HardLink { name, target } => {
            let ty = if matches!(kind, Malicious::Symlink { .. }) {
                EntryType::Symlink
            } else {
                EntryType::Link
            };
            let mut h = Header::new_gnu();
            h.set_entry_type(ty);
            h.set_mode(0o777);
            h.set_size(0);
            set_name(&mut h, name.as_bytes());
            set_link(&mut h, target.as_bytes());
            h.set_cksum();
            append(&mut b, &h, &[]);
            let through = format!("{name}/escaped.txt");
            append(&mut b, &file_header(through.as_bytes(), ESCAPE_PAYLOAD.len()), ESCAPE_PAYLOAD);
        }
        Malicious::CharDevice(name) | Malicious::Fifo(name) => {
            let ty =
                if matches!(kind, Malicious::Fifo(_)) { EntryType::Fifo } else { EntryType::Char };
            let mut h = Header::new_gnu();
            h.set_entry_type(ty);
            h.set_mode(0o644);
            h.set_size(0);
            set_name(&mut h, name.as_bytes());
            h.set_cksum();
            append(&mut b, &h, &[]);
        }
    }
    append(&mut b, &file_header(b"ok/last.txt", 5), b"last\n");
    gzip(&finish(b))
}

/// Gzip-compresses `data` (fast level).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

fn file_header(name: &[u8], size: usize) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size as u64);
    h.set_mtime(1_234_567_890);
    set_name(&mut h, name);
    h.set_cksum();
    h
}

/// Writes the raw name bytes (no validation: that is the point) into the 100-byte field.
fn set_name(h: &mut Header, name: &[u8]) {
    assert!(name.len() < 100, "fixture names must fit the classic 100-byte field");
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

fn set_link(h: &mut Header, target: &[u8]) {
    assert!(target.len() < 100, "fixture link targets must fit the 100-byte field");
    let field = &mut h.as_old_mut().linkname;
    field.fill(0);
    field[..target.len()].copy_from_slice(target);
}

fn append(b: &mut tar::Builder<Vec<u8>>, h: &Header, data: &[u8]) {
    b.append(h, data).expect("writing to a Vec cannot fail");
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(gz: &[u8]) -> Vec<(String, EntryType, Vec<u8>)> {
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                let ty = e.header().entry_type();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, ty, data)
            })
            .collect()
    }

    #[test]
    fn cifar_archive_has_official_layout_and_record_sizes() {
        let e = entries(&cifar10_tar_gz(3, 2, 7));
        let names: Vec<&str> = e.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "cifar-10-batches-bin/",
                "cifar-10-batches-bin/data_batch_1.bin",
                "cifar-10-batches-bin/data_batch_2.bin",
                "cifar-10-batches-bin/data_batch_3.bin",
                "cifar-10-batches-bin/data_batch_4.bin",
                "cifar-10-batches-bin/data_batch_5.bin",
                "cifar-10-batches-bin/test_batch.bin",
                "cifar-10-batches-bin/batches.meta.txt",
            ]
        );
        assert_eq!(e[1].2.len(), 3 * 3073);
        assert_eq!(e[6].2.len(), 2 * 3073);
        // batch 2 starts at global index 3, so its first label is 3 % 10
        assert_eq!(e[2].2[0], 3);
        assert_eq!(e[2].2[3073], 4);
        assert_eq!(e[7].2, CIFAR10_META.as_bytes());
    }

    #[test]
    fn malicious_entries_keep_their_raw_paths() {
        let e = entries(&malicious_tar_gz(Malicious::ParentDir("../escaped.txt")));
        assert_eq!(e[1].0, "../escaped.txt");
        assert_eq!(e[1].2, ESCAPE_PAYLOAD);
        let e = entries(&malicious_tar_gz(Malicious::Absolute("/tmp/escaped.txt")));
        assert_eq!(e[1].0, "/tmp/escaped.txt");
        let e = entries(&malicious_tar_gz(Malicious::Symlink { name: "s", target: "/tmp" }));
        assert_eq!((e[1].0.as_str(), e[1].1), ("s", EntryType::Symlink));
        assert_eq!(e[2].0, "s/escaped.txt");
        let e = entries(&malicious_tar_gz(Malicious::HardLink { name: "h", target: "/etc/x" }));
        assert_eq!(e[1].1, EntryType::Link);
        let e = entries(&malicious_tar_gz(Malicious::Fifo("p")));
        assert_eq!(e[1].1, EntryType::Fifo);
        assert_eq!(e.last().unwrap().0, "ok/last.txt");
    }
}
