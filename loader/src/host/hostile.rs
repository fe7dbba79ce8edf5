//! Fault injection: a host that lies in its OCALL replies, to prove the LibOS
//! checks every one (`conf-run --insecure-hostile-host MODE`). Never use it
//! for anything but tests.

use std::sync::atomic::{AtomicU64, Ordering};

use conf_abi::ocall::{state, Ocall};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Claim more bytes than were asked for on reads and writes.
    Lengths,
    /// Return an errno Linux does not have.
    Errno,
    /// Return file descriptors out of range.
    Fds,
    /// Leave the request state as something nobody set.
    State,
    /// Garbage in the data area (stat buffers, chunk digests, directory
    /// entries) — the LibOS must reject it or contain it.
    Data,
    /// Pick one of the above at random per call (seeded).
    Random,
}

impl Mode {
    pub fn parse(s: &str) -> Option<(Mode, u64)> {
        let (name, seed) = s.split_once(':').unwrap_or((s, "1"));
        let seed = seed.parse().ok()?;
        let m = match name {
            "lengths" => Mode::Lengths,
            "errno" => Mode::Errno,
            "fds" => Mode::Fds,
            "state" => Mode::State,
            "data" => Mode::Data,
            "random" => Mode::Random,
            _ => return None,
        };
        Some((m, seed))
    }
}

pub struct Hostile {
    mode: Mode,
    rng: AtomicU64,
    /// Calls left before lying starts (so boot gets far enough to matter).
    grace: AtomicU64,
}

impl Hostile {
    pub fn new(mode: Mode, seed: u64) -> Hostile {
        Hostile {
            mode,
            rng: AtomicU64::new(seed.max(1)),
            grace: AtomicU64::new(seed % 40),
        }
    }

    fn next(&self) -> u64 {
        // xorshift64; atomicity is not important here.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }

    /// Rewrite a reply the way this mode lies.
    pub fn corrupt(
        &self,
        nr: u32,
        args: &[u64; 6],
        ret: &mut i64,
        aux: &mut u64,
        st: &mut u32,
        data: &mut [u8],
    ) {
        if self.grace.load(Ordering::Relaxed) > 0 {
            self.grace.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let Some(op) = Ocall::from_raw(nr) else {
            return;
        };
        let mode = if self.mode == Mode::Random {
            [
                Mode::Lengths,
                Mode::Errno,
                Mode::Fds,
                Mode::State,
                Mode::Data,
            ][(self.next() % 5) as usize]
        } else {
            self.mode
        };
        match (mode, op) {
            (
                Mode::Lengths,
                Ocall::Read | Ocall::Pread | Ocall::Write | Ocall::Pwrite | Ocall::Getdents64,
            ) => *ret = args[2] as i64 + 1 + (self.next() % 4096) as i64,
            (Mode::Lengths, Ocall::Readlink) => *ret = args[3] as i64 + 1,
            (Mode::Errno, _) => *ret = -(1000 + (self.next() % 3000) as i64),
            (Mode::Fds, Ocall::Open) => *ret = 1 << 40,
            (Mode::Fds, Ocall::Pipe2) => *aux = u64::MAX,
            (Mode::State, _) => *st = state::POSTED + 7,
            (Mode::Data, _) => {
                for b in data.iter_mut().take(64 * 1024) {
                    *b = self.next() as u8;
                }
            }
            _ => {}
        }
    }
}
