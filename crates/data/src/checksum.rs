//! MD5 and SHA-256 of files and streams, as lowercase hex, and verification against an
//! expected digest with a typed mismatch error.
//!
//! The official dataset archives publish an MD5 (CIFAR, MNIST) and mirrors often a SHA-256;
//! both are streamed in 64 KiB blocks, so a 170 MB archive never sits in memory.
//!
//! ```
//! use imgclass_data::checksum::{Checksum, md5_reader, sha256_reader};
//!
//! // RFC 1321 and FIPS 180-2 test vectors for "abc"
//! assert_eq!(md5_reader(&b"abc"[..])?, "900150983cd24fb0d6963f7d28e17f72");
//! assert_eq!(
//!     sha256_reader(&b"abc"[..])?,
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! let expected = Checksum::md5("900150983CD24FB0D6963F7D28E17F72")?; // case is ignored
//! assert!(expected.verify_reader(&b"abc"[..]).is_ok());
//! assert!(expected.verify_reader(&b"abd"[..]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 1321): 16 bytes, 32 hex digits. Detects corruption, not tampering.
    Md5,
    /// SHA-256 (FIPS 180-4): 32 bytes, 64 hex digits.
    Sha256,
}

impl Algorithm {
    /// Number of hex digits of a digest of this algorithm (32 or 64).
    pub const fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// The lowercase hex digest of everything `reader` yields.
    pub fn digest_reader<R: Read>(self, reader: R) -> io::Result<String> {
        match self {
            Algorithm::Md5 => hash_reader::<Md5, R>(reader),
            Algorithm::Sha256 => hash_reader::<Sha256, R>(reader),
        }
    }

    /// The lowercase hex digest of the file at `path`.
    pub fn digest_file(self, path: &Path) -> Result<String, ChecksumError> {
        let file = std::fs::File::open(path)
            .map_err(|source| ChecksumError::Io { path: path.to_path_buf(), source })?;
        self.digest_reader(file)
            .map_err(|source| ChecksumError::Io { path: path.to_path_buf(), source })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
        })
    }
}

/// Why a checksum could not be parsed, computed or matched.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// The expected digest is not `algorithm.hex_len()` hex digits.
    #[error("{value:?} is not a valid {algorithm} digest ({expected_len} hex digits expected)")]
    InvalidHex {
        /// The algorithm the digest was given for.
        algorithm: Algorithm,
        /// The rejected text.
        value: String,
        /// The number of hex digits the algorithm needs.
        expected_len: usize,
    },
    /// Reading the file failed.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        /// The file being hashed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The data does not have the expected digest.
    #[error("{algorithm} mismatch for {what}: expected {expected}, found {found}")]
    Mismatch {
        /// The algorithm.
        algorithm: Algorithm,
        /// What was hashed (a file path, or "stream").
        what: String,
        /// The expected lowercase hex digest.
        expected: String,
        /// The computed lowercase hex digest.
        found: String,
    },
}

/// An expected digest: an algorithm and its lowercase hex value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    algorithm: Algorithm,
    hex: String,
}

impl Checksum {
    /// An expected digest of `algorithm`, given as hex (any case, surrounding whitespace
    /// ignored). Rejects a value of the wrong length or with a non-hex digit.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Self, ChecksumError> {
        let trimmed = hex.trim();
        if trimmed.len() != algorithm.hex_len() || !trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChecksumError::InvalidHex {
                algorithm,
                value: hex.to_string(),
                expected_len: algorithm.hex_len(),
            });
        }
        Ok(Self { algorithm, hex: trimmed.to_ascii_lowercase() })
    }

    /// An expected MD5 digest (32 hex digits).
    pub fn md5(hex: &str) -> Result<Self, ChecksumError> {
        Self::new(Algorithm::Md5, hex)
    }

    /// An expected SHA-256 digest (64 hex digits).
    pub fn sha256(hex: &str) -> Result<Self, ChecksumError> {
        Self::new(Algorithm::Sha256, hex)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The expected digest as lowercase hex.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks a computed lowercase hex digest of `what` against this one.
    pub fn check(&self, found: &str, what: impl Into<String>) -> Result<(), ChecksumError> {
        if found.eq_ignore_ascii_case(&self.hex) {
            Ok(())
        } else {
            Err(ChecksumError::Mismatch {
                algorithm: self.algorithm,
                what: what.into(),
                expected: self.hex.clone(),
                found: found.to_ascii_lowercase(),
            })
        }
    }

    /// Hashes the file at `path` and checks it against this digest.
    pub fn verify_file(&self, path: &Path) -> Result<(), ChecksumError> {
        let found = self.algorithm.digest_file(path)?;
        self.check(&found, path.display().to_string())
    }

    /// Hashes everything `reader` yields and checks it against this digest.
    pub fn verify_reader<R: Read>(&self, reader: R) -> Result<(), ChecksumError> {
        let found = self
            .algorithm
            .digest_reader(reader)
            .map_err(|source| ChecksumError::Io { path: PathBuf::from("<stream>"), source })?;
        self.check(&found, "stream")
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// An incremental digest: feed bytes as they arrive (e.g. while downloading), then take the
/// hex digest. Gives the same result as [`Algorithm::digest_reader`] over the concatenation.
#[derive(Debug, Clone)]
pub struct Hasher {
    algorithm: Algorithm,
    state: State,
    len: u64,
}

#[derive(Debug, Clone)]
enum State {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    /// A fresh hasher of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            Algorithm::Md5 => State::Md5(Md5::new()),
            Algorithm::Sha256 => State::Sha256(Sha256::new()),
        };
        Self { algorithm, state, len: 0 }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Md5(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
        }
        self.len += bytes.len() as u64;
    }

    /// Feeds everything `reader` yields; returns the number of bytes read.
    pub fn update_reader<R: Read>(&mut self, mut reader: R) -> io::Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    self.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The lowercase hex digest of everything fed.
    pub fn finalize_hex(self) -> String {
        match self.state {
            State::Md5(h) => to_hex(&h.finalize()),
            State::Sha256(h) => to_hex(&h.finalize()),
        }
    }
}

/// The lowercase hex MD5 of everything `reader` yields.
pub fn md5_reader<R: Read>(reader: R) -> io::Result<String> {
    Algorithm::Md5.digest_reader(reader)
}

/// The lowercase hex SHA-256 of everything `reader` yields.
pub fn sha256_reader<R: Read>(reader: R) -> io::Result<String> {
    Algorithm::Sha256.digest_reader(reader)
}

/// The lowercase hex MD5 of the file at `path`.
pub fn md5_file(path: &Path) -> Result<String, ChecksumError> {
    Algorithm::Md5.digest_file(path)
}

/// The lowercase hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String, ChecksumError> {
    Algorithm::Sha256.digest_file(path)
}

fn hash_reader<D: Digest, R: Read>(mut reader: R) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors: RFC 1321 appendix A.5 (MD5) and FIPS 180-2 / NIST examples (SHA-256).
    #[test]
    fn known_vectors() {
        assert_eq!(md5_reader(&b""[..]).unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_reader(&b"message digest"[..]).unwrap(), "f96b697d7cb7938d525a2f31aaf161d0");
        assert_eq!(
            sha256_reader(&b""[..]).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_reader(&b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"[..])
                .unwrap(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn streaming_over_block_boundaries_matches_one_shot() {
        // 200,000 bytes span several 64 KiB blocks; the one-shot digest is the oracle.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let one_shot = to_hex(&Md5::digest(&data));
        assert_eq!(md5_reader(&data[..]).unwrap(), one_shot);
        let one_shot = to_hex(&Sha256::digest(&data));
        assert_eq!(sha256_reader(&data[..]).unwrap(), one_shot);
    }

    #[test]
    fn file_digest_and_mismatch_error() {
        let dir = std::env::temp_dir().join(format!("imgclass-checksum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(md5_file(&path).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let wrong = Checksum::md5("00000000000000000000000000000000").unwrap();
        match wrong.verify_file(&path) {
            Err(ChecksumError::Mismatch { algorithm, expected, found, .. }) => {
                assert_eq!(algorithm, Algorithm::Md5);
                assert_eq!(expected, "00000000000000000000000000000000");
                assert_eq!(found, "900150983cd24fb0d6963f7d28e17f72");
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let missing = dir.join("missing");
        assert!(matches!(md5_file(&missing), Err(ChecksumError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn incremental_hasher_matches_one_shot_over_any_split() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let expected = alg.digest_reader(&data[..]).unwrap();
            for split in [0, 1, 63, 64, 65, 65_536, 99_999, 100_000] {
                let mut h = Hasher::new(alg);
                h.update(&data[..split]);
                h.update_reader(&data[split..]).unwrap();
                assert_eq!(h.len(), 100_000);
                assert_eq!(h.finalize_hex(), expected, "{alg} split at {split}");
            }
        }
    }

    #[test]
    fn rejects_malformed_hex() {
        assert!(matches!(
            Checksum::md5("abc"),
            Err(ChecksumError::InvalidHex { expected_len: 32, .. })
        ));
        assert!(Checksum::md5("zz0150983cd24fb0d6963f7d28e17f72").is_err());
        assert!(Checksum::sha256("900150983cd24fb0d6963f7d28e17f72").is_err());
        let c = Checksum::md5(" 900150983CD24FB0D6963F7D28E17F72\n").unwrap();
        assert_eq!(c.hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(c.to_string(), "md5:900150983cd24fb0d6963f7d28e17f72");
    }
}
