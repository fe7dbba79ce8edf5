//! Exitless OCALL workers: host threads that take posted requests from the
//! ring so enclave threads need not leave.
//!
//! A worker spins over the slots while requests keep coming, then parks on a
//! futex. An enclave thread whose request nobody took runs it itself after
//! exiting (`Host::wait_or_steal`) and pokes the workers awake, so parked
//! workers cost nothing and a busy enclave gets them back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conf_abi::ocall::state;

use super::{futex_wait, futex_wake, Host};

/// How long a worker keeps polling after its last request.
const HOT_FOR: Duration = Duration::from_micros(200);

/// Start `n` workers.
pub fn start(host: Arc<Host>, n: u32) -> std::io::Result<()> {
    for i in 0..n {
        let h = host.clone();
        crate::sim::signals::spawn_blocked(
            std::thread::Builder::new().name(format!("conf-ocall-{i}")),
            move || run(&h),
        )?;
    }
    Ok(())
}

fn run(host: &Host) {
    let nslots = host.ring.layout.nslots;
    let hdr = host.ring.header();
    loop {
        let mut last = Instant::now();
        while last.elapsed() < HOT_FOR {
            let mut served = false;
            for i in 0..nslots {
                if host.ring.slot(i).state.load(Ordering::Acquire) == state::POSTED && host.serve(i)
                {
                    served = true;
                }
            }
            if served {
                last = Instant::now();
            } else {
                std::hint::spin_loop();
            }
        }
        let seq = hdr.worker_wake.load(Ordering::Acquire);
        hdr.parked_workers.fetch_add(1, Ordering::SeqCst);
        futex_wait(&hdr.worker_wake, seq, None);
        hdr.parked_workers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wake parked workers (called after an enclave thread had to run its own
/// request because none was polling).
pub fn poke(host: &Host) {
    let hdr = host.ring.header();
    if hdr.parked_workers.load(Ordering::Relaxed) > 0 {
        hdr.worker_wake.fetch_add(1, Ordering::SeqCst);
        futex_wake(&hdr.worker_wake);
    }
}
