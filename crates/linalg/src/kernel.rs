//! Kernel selection: [`KernelKind`] names the SIMD path; [`KernelKind::detect`] picks the best
//! one the CPU supports once per batch call, unless `IMGCLASS_KERNEL=scalar|avx2|avx512`
//! forces one (tests and benchmarks use this to run every path).

use crate::LinalgError;

/// The name of the environment variable that forces a kernel.
pub const KERNEL_ENV: &str = "IMGCLASS_KERNEL";

/// A family of distance kernels.
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
    /// The lowercase name used by `IMGCLASS_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Parses a name as `IMGCLASS_KERNEL` spells it.
    pub fn from_name(name: &str) -> Result<Self, LinalgError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Self::Scalar),
            "avx2" => Ok(Self::Avx2),
            "avx512" => Ok(Self::Avx512),
            _ => Err(LinalgError::UnknownKernel { name: name.to_owned() }),
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
        [Self::Scalar, Self::Avx2, Self::Avx512].into_iter().filter(|k| k.is_available()).collect()
    }

    /// The fastest available kernel.
    pub fn best() -> Self {
        Self::available().into_iter().max().unwrap_or(Self::Scalar)
    }

    /// The kernel named by `forced` (an `IMGCLASS_KERNEL` value) if given, else [`Self::best`].
    /// A forced kernel the CPU cannot run is an error, never a silent fallback.
    pub fn resolve(forced: Option<&str>) -> Result<Self, LinalgError> {
        match forced {
            None => Ok(Self::best()),
            Some(s) if s.trim().is_empty() => Ok(Self::best()),
            Some(s) => {
                let k = Self::from_name(s)?;
                if k.is_available() {
                    Ok(k)
                } else {
                    Err(LinalgError::KernelUnavailable { name: k.name() })
                }
            }
        }
    }

    /// [`Self::resolve`] with the value of `IMGCLASS_KERNEL`. Called once per batch call.
    pub fn detect() -> Result<Self, LinalgError> {
        let forced = std::env::var(KERNEL_ENV).ok();
        let k = Self::resolve(forced.as_deref())?;
        tracing::trace!(kernel = k.name(), "distance kernel selected");
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
            Err(LinalgError::UnknownKernel { name: "neon9".into() })
        );
        for k in [KernelKind::Scalar, KernelKind::Avx2, KernelKind::Avx512] {
            assert_eq!(KernelKind::from_name(k.name()), Ok(k));
        }
    }
}
