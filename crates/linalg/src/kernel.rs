//! Kernel selection, the one rule for every SIMD path of the workspace (linalg's distances
//! and products, the ANN indices' single-pair kernels in imgclass-knn): [`KernelKind`] names
//! the path; [`KernelKind::detect`] picks it once per batch call. `IMGCLASS_KERNEL` unset or
//! empty means the best path this CPU runs; `scalar|avx2|avx512` forces that path (tests and
//! benchmarks use this to run every path); a forced path the CPU cannot run, or any other
//! value, is a [`KernelError`], never a silent fallback.

/// The name of the environment variable that forces a kernel.
pub const KERNEL_ENV: &str = "IMGCLASS_KERNEL";

/// The valid `IMGCLASS_KERNEL` values, as the error messages list them.
const VALID: &str = "scalar, avx2, avx512";

/// Why no kernel could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// `IMGCLASS_KERNEL` names no kernel.
    #[error("{KERNEL_ENV}={value:?} names no kernel (valid: {VALID}, or unset for the best)")]
    Unknown {
        /// The value given.
        value: String,
    },
    /// The requested kernel needs CPU features this machine lacks.
    #[error("kernel {name} is not available on this cpu")]
    Unavailable {
        /// The kernel's name.
        name: &'static str,
    },
}

/// A SIMD path. Each tier implies the CPU features every kernel of that tier needs, so one
/// choice serves the distance kernels, the f32/integer products and the ANN kernels; `Avx512`
/// requires F/BW/VL/VNNI (the products' f32 kernel would need only F: on a CPU with F but
/// without VNNI they now run AVX2, the price of one rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelKind {
    /// The portable twin (`arch/scalar.rs`): plain loops, the reference for every other path.
    Scalar,
    /// x86-64 AVX2 (+FMA for f32): `vpsadbw` for L1, `vpmaddwd` on widened bytes for L2.
    Avx2,
    /// x86-64 AVX-512 F/BW/VNNI: `vpsadbw` on 64-byte vectors for L1, `vpdpbusd` for L2.
    Avx512,
}

impl KernelKind {
    /// Every kernel, scalar first (whether or not this CPU runs it).
    pub const ALL: [KernelKind; 3] = [Self::Scalar, Self::Avx2, Self::Avx512];

    /// The lowercase name used by `IMGCLASS_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Parses a name as `IMGCLASS_KERNEL` spells it.
    pub fn from_name(name: &str) -> Result<Self, KernelError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Self::Scalar),
            "avx2" => Ok(Self::Avx2),
            "avx512" => Ok(Self::Avx512),
            _ => Err(KernelError::Unknown { value: name.to_owned() }),
        }
    }

    /// True when this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every kernel this CPU can run, scalar first.
    pub fn available() -> Vec<Self> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// The fastest available kernel.
    pub fn best() -> Self {
        Self::available().into_iter().max().unwrap_or(Self::Scalar)
    }

    /// The kernel named by `forced` (an `IMGCLASS_KERNEL` value) if given, else [`Self::best`].
    /// A forced kernel the CPU cannot run is an error, never a silent fallback.
    pub fn resolve(forced: Option<&str>) -> Result<Self, KernelError> {
        match forced {
            None => Ok(Self::best()),
            Some(s) if s.trim().is_empty() => Ok(Self::best()),
            Some(s) => {
                let k = Self::from_name(s)?;
                if k.is_available() {
                    Ok(k)
                } else {
                    Err(KernelError::Unavailable { name: k.name() })
                }
            }
        }
    }

    /// [`Self::resolve`] with the value of `IMGCLASS_KERNEL`. Called once per batch call.
    /// A value that is not Unicode counts as unknown.
    pub fn detect() -> Result<Self, KernelError> {
        let forced = match std::env::var(KERNEL_ENV) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(v)) => {
                return Err(KernelError::Unknown { value: v.to_string_lossy().into_owned() });
            }
        };
        let k = Self::resolve(forced.as_deref())?;
        tracing::trace!(kernel = k.name(), "kernel selected");
        Ok(k)
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_parses_and_rejects() {
        assert_eq!(KernelKind::resolve(Some("scalar")), Ok(KernelKind::Scalar));
        assert_eq!(KernelKind::resolve(Some(" AVX2 ")).is_ok(), KernelKind::Avx2.is_available());
        assert_eq!(KernelKind::resolve(None), Ok(KernelKind::best()));
        assert_eq!(
            KernelKind::resolve(Some("neon9")),
            Err(KernelError::Unknown { value: "neon9".into() })
        );
        let msg = KernelKind::resolve(Some("neon9")).unwrap_err().to_string();
        assert!(msg.contains("IMGCLASS_KERNEL") && msg.contains("neon9"), "{msg}");
        assert!(msg.contains("scalar, avx2, avx512"), "{msg}");
        for k in [KernelKind::Scalar, KernelKind::Avx2, KernelKind::Avx512] {
            assert_eq!(KernelKind::from_name(k.name()), Ok(k));
        }
    }
}
