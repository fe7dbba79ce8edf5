//! The channel a process's state moves over to a child enclave: a host
//! socket, with every message encrypted and authenticated (AES-256-GCM).
//!
//! Key agreement: both ends are enclaves with the same MRENCLAVE, so both
//! get the same sealing key from EGETKEY (emulated by the sim backend).
//! Each side contributes 16 random bytes; the channel key is
//! SHA-256(tag ‖ sealing key ‖ parent nonce ‖ child nonce). Nonces count
//! messages per direction, so the host can delay or drop messages but not
//! replay, reorder or alter them without the receiver noticing (it aborts).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use conf_abi::Errno;

use crate::host::calls::{self as hc, HostFd};

/// Largest message (a memory image is sent in pieces of this size).
pub const MAX_MSG: usize = 1 << 20;

pub struct Channel {
    pub fd: HostFd,
    cipher: Aes256Gcm,
    /// 0 for parent → child, 1 for child → parent.
    send_dir: u8,
    send_ctr: u64,
    recv_ctr: u64,
}

fn key(seal: &[u8; 32], n1: &[u8; 16], n2: &[u8; 16]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"conf-process-channel-v1\0");
    h.update(seal);
    h.update(n1);
    h.update(n2);
    h.finalize().into()
}

impl Channel {
    fn new(fd: HostFd, k: [u8; 32], send_dir: u8) -> Channel {
        Channel {
            fd,
            cipher: Aes256Gcm::new((&k).into()),
            send_dir,
            send_ctr: 0,
            recv_ctr: 0,
        }
    }

    /// The parent's end: send our nonce, take the child's.
    pub fn parent(fd: HostFd) -> Result<Channel, Errno> {
        let seal = hc::seal_key()?;
        let mut n1 = [0u8; 16];
        crate::arch::fill_random(&mut n1);
        hc::write_all(fd, &n1)?;
        let mut n2 = [0u8; 16];
        hc::read_exact(fd, &mut n2)?;
        Ok(Channel::new(fd, key(&seal, &n1, &n2), 0))
    }

    /// The child's end.
    pub fn child(fd: HostFd) -> Result<Channel, Errno> {
        let seal = hc::seal_key()?;
        let mut n1 = [0u8; 16];
        hc::read_exact(fd, &mut n1)?;
        let mut n2 = [0u8; 16];
        crate::arch::fill_random(&mut n2);
        hc::write_all(fd, &n2)?;
        Ok(Channel::new(fd, key(&seal, &n1, &n2), 1))
    }

    fn nonce(dir: u8, ctr: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[0] = dir;
        n[4..].copy_from_slice(&ctr.to_le_bytes());
        n
    }

    pub fn send(&mut self, msg: &[u8]) -> Result<(), Errno> {
        debug_assert!(msg.len() <= MAX_MSG);
        let n = Self::nonce(self.send_dir, self.send_ctr);
        self.send_ctr += 1;
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&n), msg)
            .map_err(|_| Errno::EIO)?;
        hc::write_all(self.fd, &(ct.len() as u32).to_le_bytes())?;
        hc::write_all(self.fd, &ct)
    }

    /// The next message; an altered, replayed or reordered one is an attack.
    pub fn recv(&mut self) -> Result<Vec<u8>, Errno> {
        let mut len = [0u8; 4];
        hc::read_exact(self.fd, &mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if !(16..=MAX_MSG + 16).contains(&len) {
            crate::host::abort(
                conf_abi::entry::AbortCode::HostileHost,
                format_args!("a message on the process channel has an impossible length ({len})"),
            );
        }
        let mut ct = alloc::vec![0u8; len];
        hc::read_exact(self.fd, &mut ct)?;
        let n = Self::nonce(1 - self.send_dir, self.recv_ctr);
        self.recv_ctr += 1;
        match self.cipher.decrypt(Nonce::from_slice(&n), ct.as_slice()) {
            Ok(p) => Ok(p),
            Err(_) => crate::host::abort(
                conf_abi::entry::AbortCode::HostileHost,
                format_args!("a message on the process channel failed authentication"),
            ),
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        hc::close(self.fd);
    }
}
