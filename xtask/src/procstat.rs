//! This process's resource use from Linux `/proc/self`, for the benchmarks: CPU time and
//! `kB` fields of `status` (resident set, its peak). `None` where `/proc` is unavailable.

/// CPU seconds (user + system, all threads) this process has used so far: fields 14 and 15
/// of `/proc/self/stat`, in clock ticks of 1/100 s (Linux's fixed `USER_HZ`). On a shared
/// machine the CPU time of a phase is steadier than its wall time.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // the command name (field 2) may hold spaces; the fields after its ')' are plain
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A `kB` field of `/proc/self/status` (`"VmHWM:"`, `"VmRSS:"`), in bytes.
pub fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        // burn a little CPU: the counter never goes backwards
        let a = cpu_seconds().expect("stat parses");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds().expect("stat parses") >= a);
        let rss = status_bytes("VmRSS:").expect("VmRSS");
        let peak = status_bytes("VmHWM:").expect("VmHWM");
        assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
        assert_eq!(status_bytes("NoSuchField:"), None);
    }
}
