//! Host time per OCALL kind, for profiling start-up (CONF_TIMING=1): which
//! host operations a run waited for, how often, and how long each took.

use std::sync::atomic::{AtomicU64, Ordering};

use conf_abi::ocall::Ocall;

/// OCALL numbers counted (all of today's are below).
const KINDS: usize = 128;

pub struct OcallTimes {
    calls: [AtomicU64; KINDS],
    ns: [AtomicU64; KINDS],
}

impl Default for OcallTimes {
    fn default() -> OcallTimes {
        OcallTimes {
            calls: [const { AtomicU64::new(0) }; KINDS],
            ns: [const { AtomicU64::new(0) }; KINDS],
        }
    }
}

impl OcallTimes {
    pub fn record(&self, nr: u32, since: std::time::Instant) {
        let i = (nr as usize).min(KINDS - 1);
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        self.ns[i].fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// One line per kind, the costliest first, and the total.
    pub fn report(&self) -> String {
        let mut kinds: Vec<(u64, u64, String)> = (0..KINDS)
            .filter_map(|i| {
                let calls = self.calls[i].load(Ordering::Relaxed);
                (calls > 0).then(|| {
                    let name = Ocall::from_raw(i as u32).map_or("unknown", |o| o.name());
                    (self.ns[i].load(Ordering::Relaxed), calls, name.to_string())
                })
            })
            .collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.0));
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut out = String::new();
        for (ns, calls, name) in &kinds {
            out.push_str(&format!(
                "[conf] timing: OCALL {name}: {calls} calls, {:.2} ms ({:.1} us each)\n",
                ms(*ns),
                *ns as f64 / 1e3 / *calls as f64
            ));
        }
        let total: u64 = kinds.iter().map(|k| k.0).sum();
        let calls: u64 = kinds.iter().map(|k| k.1).sum();
        out.push_str(&format!(
            "[conf] timing: OCALLs: {calls} calls, {:.2} ms on the host\n",
            ms(total)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_kind_costliest_first_and_adds_them_up() {
        let t = OcallTimes::default();
        let long_ago = std::time::Instant::now() - std::time::Duration::from_millis(3);
        t.record(Ocall::Pread as u32, long_ago);
        t.record(Ocall::Pread as u32, long_ago);
        t.record(Ocall::Close as u32, std::time::Instant::now());
        let r = t.report();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines.len(), 3, "{r}");
        assert!(lines[0].contains("OCALL Pread: 2 calls"), "{r}");
        assert!(lines[1].contains("OCALL Close: 1 calls"), "{r}");
        assert!(lines[2].contains("OCALLs: 3 calls"), "{r}");
    }
}
