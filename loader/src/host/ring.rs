//! The host's view of the OCALL ring: allocation, the boot block, and
//! bounds-checked access to each slot's data area.

use std::io;
use std::sync::atomic::Ordering;

use conf_abi::ocall::{
    BootBlock, OcallSlot, RingHeader, RingLayout, BOOT_BLOCK_SIZE, BOOT_MAGIC, RING_MAGIC,
    SLOT_DATA_SIZE,
};

/// The ring's memory: anonymous pages outside ELRANGE, kept for the life of
/// the process.
pub struct Ring {
    pub base: u64,
    pub layout: RingLayout,
}

// SAFETY: all shared fields are atomics; data areas are per-slot.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

/// What the host tells the LibOS at boot.
pub struct BootInfo<'a> {
    pub backend: u64,
    pub argv: &'a [Vec<u8>],
    pub env: &'a [Vec<u8>],
    pub log_level: Option<u8>,
    pub tty_mask: u64,
    /// Host directory shown as `/`.
    pub root: &'a [u8],
    /// Child process: host fd of the state channel.
    pub chan_fd: Option<i32>,
}

const ABORT_MSG_CAP: u64 = 4096;

impl Ring {
    pub fn new(nslots: u64) -> io::Result<Ring> {
        let layout = RingLayout::new(nslots);
        // SAFETY: fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.total_size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Ring {
            base: p as u64,
            layout,
        };
        let h = ring.header();
        h.magic.store(RING_MAGIC, Ordering::Relaxed);
        h.version.store(conf_abi::ABI_VERSION, Ordering::Relaxed);
        h.nslots.store(nslots as u32, Ordering::Relaxed);
        Ok(ring)
    }

    pub fn header(&self) -> &RingHeader {
        // SAFETY: the header is at the ring base, which we mapped.
        unsafe { &*(self.base as *const RingHeader) }
    }

    pub fn slot(&self, i: u64) -> &OcallSlot {
        assert!(i < self.layout.nslots);
        // SAFETY: slot i is inside the mapping.
        unsafe { &*((self.base + self.layout.slot_offset(i)) as *const OcallSlot) }
    }

    /// The data area of slot `i`. Handing out `&mut` from `&self` is the
    /// point: the area is memory shared with the enclave, not owned by the
    /// Ring, and only the host thread serving slot `i` touches it.
    #[allow(clippy::mut_from_ref)]
    pub fn data(&self, i: u64) -> &mut [u8] {
        assert!(i < self.layout.nslots);
        // SAFETY: each slot's area is disjoint; the enclave thread that owns
        // it is outside the enclave or spinning while the host uses it.
        unsafe {
            std::slice::from_raw_parts_mut(
                (self.base + self.layout.data_area_offset(i)) as *mut u8,
                SLOT_DATA_SIZE as usize,
            )
        }
    }

    /// Fill in the boot block.
    pub fn write_boot(&self, info: &BootInfo<'_>) -> Result<(), String> {
        let hdr = std::mem::size_of::<BootBlock>() as u64;
        let argv: Vec<u8> = info
            .argv
            .iter()
            .flat_map(|a| a.iter().copied().chain([0]))
            .collect();
        let env: Vec<u8> = info
            .env
            .iter()
            .flat_map(|a| a.iter().copied().chain([0]))
            .collect();
        let argv_off = hdr.next_multiple_of(8);
        let env_off = argv_off + argv.len() as u64;
        let root_off = env_off + env.len() as u64;
        let abort_off = (root_off + info.root.len() as u64).next_multiple_of(8);
        if abort_off + ABORT_MSG_CAP > BOOT_BLOCK_SIZE {
            return Err(format!(
                "the command line and passed-through environment take {} bytes; at most {} fit",
                argv.len() + env.len(),
                BOOT_BLOCK_SIZE - hdr - ABORT_MSG_CAP
            ));
        }
        let boot = BootBlock {
            magic: BOOT_MAGIC,
            backend: info.backend,
            host_pid: std::process::id() as u64,
            log_level: info.log_level.map(|l| l as u64).unwrap_or(u64::MAX),
            argv_off,
            argv_len: argv.len() as u64,
            argc: info.argv.len() as u64,
            env_off,
            env_len: env.len() as u64,
            tty_mask: info.tty_mask,
            ncpus: conf_manifest::cpus() as u64,
            realtime_ns: 0,
            abort_msg_off: abort_off,
            abort_msg_cap: ABORT_MSG_CAP,
            root_off,
            root_len: info.root.len() as u64,
            chan_fd: info.chan_fd.map(|f| f as u64).unwrap_or(u64::MAX),
        };
        let base = self.base + self.layout.boot_offset;
        // SAFETY: all writes are inside the boot block (checked above).
        unsafe {
            (base as *mut BootBlock).write(boot);
            std::ptr::copy_nonoverlapping(argv.as_ptr(), (base + argv_off) as *mut u8, argv.len());
            std::ptr::copy_nonoverlapping(env.as_ptr(), (base + env_off) as *mut u8, env.len());
            std::ptr::copy_nonoverlapping(
                info.root.as_ptr(),
                (base + root_off) as *mut u8,
                info.root.len(),
            );
        }
        Ok(())
    }

    /// The abort message the LibOS left, if any.
    pub fn abort_message(&self) -> String {
        let base = self.base + self.layout.boot_offset;
        // SAFETY: reads inside the boot block; the message length is bounded.
        unsafe {
            let b = &*(base as *const BootBlock);
            let (off, cap) = (
                b.abort_msg_off.min(BOOT_BLOCK_SIZE),
                b.abort_msg_cap.min(ABORT_MSG_CAP),
            );
            if off + cap > BOOT_BLOCK_SIZE {
                return String::new();
            }
            let bytes = std::slice::from_raw_parts((base + off) as *const u8, cap as usize);
            let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        }
    }
}
