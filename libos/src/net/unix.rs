//! AF_UNIX socket paths inside tmpfs mounts.
//!
//! tmpfs lives in each enclave process's own memory, so a socket bound at
//! `/tmp/x` in one process would be out of reach of every other process of
//! the program. Such a path is mapped instead to a host socket in the run's
//! private socket directory (`Ocall::SocketDir`: one per run, mode 0700,
//! removed when the first process ends). Its name there is opaque: the
//! first 128 bits, in hex, of SHA-256(tag ‖ run key ‖ enclave path). The
//! run key is 32 random bytes the first process draws and hands to every
//! child over the encrypted fork/exec channel, so the host can neither read
//! the paths back from the names nor confirm a guess.
//!
//! The bound path also appears in the tmpfs as a socket file (S_IFSOCK) the
//! program can stat, chmod and unlink; unlinking its last name removes the
//! host socket, so the path can be bound again. Addresses the host reports
//! (getsockname, getpeername, accept, recvfrom) are turned back into
//! enclave paths with a table of the names this process, or an ancestor
//! before it forked or exec'd it, bound or connected to.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use conf_abi::ocall::Ocall;
use conf_abi::Errno;
use sha2::{Digest, Sha256};

use super::socket::AF_UNIX;
use crate::host::{call, Data};
use crate::sync::SpinLock;

/// Longest sockaddr_un (family + 108 bytes of path).
pub const SOCKADDR_UN_MAX: usize = 110;

struct State {
    key: Option<[u8; 32]>,
    /// The host socket directory, once asked for (or inherited).
    dir: Option<String>,
    /// Host socket name → the path the program gave (bind or connect).
    names: BTreeMap<String, Vec<u8>>,
}

static STATE: SpinLock<State> = SpinLock::new(State {
    key: None,
    dir: None,
    names: BTreeMap::new(),
});

/// The run's key, drawn on first use in the first process.
fn key() -> [u8; 32] {
    let mut st = STATE.lock();
    *st.key.get_or_insert_with(|| {
        let mut k = [0u8; 32];
        crate::arch::fill_random(&mut k);
        k
    })
}

/// The host name of the socket at enclave path `path` (absolute, resolved).
pub fn host_name(path: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"conf-unix-socket-name-v1\0");
    h.update(key());
    h.update(path.as_bytes());
    let d = h.finalize();
    let mut s = String::with_capacity(32);
    for b in &d[..16] {
        s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
        s.push(char::from_digit((b & 15) as u32, 16).unwrap());
    }
    s
}

/// The run's socket directory on the host.
fn dir() -> Result<String, Errno> {
    if let Some(d) = STATE.lock().dir.clone() {
        return Ok(d);
    }
    const CAP: usize = SOCKADDR_UN_MAX - 2 - 1 - 32 - 1;
    let r = call(Ocall::SocketDir, [0, CAP as u64, 0, 0, 0, 0]);
    let n = match r.result(Ocall::SocketDir) {
        Ok(n) => n,
        Err(e) => {
            static TOLD: core::sync::atomic::AtomicBool =
                core::sync::atomic::AtomicBool::new(false);
            if !TOLD.swap(true, core::sync::atomic::Ordering::Relaxed) {
                error!("AF_UNIX sockets in tmpfs need the run's socket directory on the host, which conf-run could not make ({}); binding or connecting to such paths fails", e.name());
            }
            return Err(e);
        }
    };
    if n as usize > CAP || n == 0 {
        crate::host::hostile(Ocall::SocketDir, "a path longer than the space given");
    }
    let mut b = alloc::vec![0u8; n as usize];
    Data::mine().get(0, &mut b);
    // Only a name: what the host says cannot hurt more than the host could
    // do to the sockets anyway, but it must make a well-formed address.
    let d = match String::from_utf8(b) {
        Ok(d) if d.starts_with('/') && !d.contains('\0') => d,
        _ => crate::host::hostile(Ocall::SocketDir, "a malformed directory path"),
    };
    STATE.lock().dir = Some(d.clone());
    Ok(d)
}

/// The host sockaddr_un for host socket `name`.
pub fn host_addr(name: &str) -> Result<Vec<u8>, Errno> {
    let d = dir()?;
    let mut out = Vec::with_capacity(SOCKADDR_UN_MAX);
    out.extend_from_slice(&AF_UNIX.to_le_bytes());
    out.extend_from_slice(d.as_bytes());
    out.push(b'/');
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    if out.len() > SOCKADDR_UN_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(out)
}

/// Remember that host socket `name` is the program's `given` path.
pub fn remember(name: &str, given: &[u8]) {
    STATE
        .lock()
        .names
        .insert(String::from(name), given.to_vec());
}

/// Remember `given` for host socket `name` unless a bind already did.
pub fn remember_if_new(name: &str, given: &[u8]) {
    let mut st = STATE.lock();
    if !st.names.contains_key(name) {
        st.names.insert(String::from(name), given.to_vec());
    }
}

/// The last tmpfs name of a bound socket is gone: remove its host socket.
pub fn unlinked(name: &str) {
    if let Ok(a) = host_addr(name) {
        let _ = crate::host::calls::unlink(&a[2..a.len() - 1], 0);
    }
}

/// An address the host reported, as the program must see it: host sockets
/// of the run's directory become the enclave path they were bound at. One
/// this process never learnt (bound by a process that is neither this one
/// nor an ancestor) stays the host path, which [`is_run_socket`] lets the
/// program use as a destination (to answer a datagram, say).
pub fn to_enclave(addr: Vec<u8>) -> Vec<u8> {
    if addr.len() <= 3 || u16::from_le_bytes([addr[0], addr[1]]) != AF_UNIX || addr[2] == 0 {
        return addr;
    }
    let path = &addr[2..];
    let path = &path[..path.iter().position(|&c| c == 0).unwrap_or(path.len())];
    // A socket passed from a process this one knows nothing of may be in
    // the directory even if this process never asked where it is; only a
    // path of the directory's shape is worth asking about.
    if STATE.lock().dir.is_none() && !looks_like_run_socket(path) {
        return addr;
    }
    let Ok(d) = dir() else {
        return addr;
    };
    let st = STATE.lock();
    let name = match path
        .strip_prefix(d.as_bytes())
        .and_then(|r| r.strip_prefix(b"/"))
    {
        Some(n) => n,
        None => return addr,
    };
    match core::str::from_utf8(name)
        .ok()
        .and_then(|n| st.names.get(n))
    {
        Some(given) => {
            let mut out = Vec::from(AF_UNIX.to_le_bytes());
            out.extend_from_slice(given);
            out.push(0);
            out
        }
        None => addr,
    }
}

/// `.../conf-*/<32 hex digits>`: the shape of a host socket of a run.
fn looks_like_run_socket(path: &[u8]) -> bool {
    let mut parts = path.rsplit(|&c| c == b'/');
    let name = parts.next().unwrap_or_default();
    let dir = parts.next().unwrap_or_default();
    name.len() == 32 && name.iter().all(u8::is_ascii_hexdigit) && dir.starts_with(b"conf-")
}

/// Is `path` (as the program gave it) a host socket of the run's directory,
/// as [`to_enclave`] reports sockets it cannot name?
pub fn is_run_socket(path: &[u8]) -> bool {
    let st = STATE.lock();
    st.dir.as_deref().is_some_and(|d| {
        path.strip_prefix(d.as_bytes())
            .and_then(|r| r.strip_prefix(b"/"))
            .is_some_and(|n| n.len() == 32 && n.iter().all(u8::is_ascii_hexdigit))
    })
}

/// What a child process inherits: the run key, the host directory (empty
/// if not asked for yet) and the names known.
pub struct Inherited {
    pub key: [u8; 32],
    pub dir: String,
    pub names: Vec<(String, Vec<u8>)>,
}

pub fn inherited() -> Inherited {
    let key = key();
    let st = STATE.lock();
    Inherited {
        key,
        dir: st.dir.clone().unwrap_or_default(),
        names: st
            .names
            .iter()
            .map(|(n, g)| (n.clone(), g.clone()))
            .collect(),
    }
}

/// A child process takes what its parent sent.
pub fn inherit(i: Inherited) {
    let mut st = STATE.lock();
    st.key = Some(i.key);
    st.dir = (!i.dir.is_empty()).then_some(i.dir);
    st.names = i.names.into_iter().collect();
}
