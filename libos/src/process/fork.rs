//! New enclave processes: fork (a copy of this process), and the exec of a
//! vfork child (a fresh program with this process's files).
//!
//! A vfork child runs on the parent's own thread and memory until it calls
//! execve or _exit, as vfork promises: nothing is copied. Only when it execs
//! is a child enclave started (same MRENCLAVE), and what it inherits — open
//! files, working directory, umask, signal state, tmpfs contents — goes over
//! the encrypted channel (`channel.rs`) together with the program to run.
//! fork sends the whole address space as well, and the child resumes from
//! the forking thread's registers with RAX = 0.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use conf_abi::Errno;

use super::channel::{Channel, MAX_MSG};
use super::fdtable::{FdEntry, FdTable};
use super::{process, Process, Rlimit, RLIM_NLIMITS};
use crate::arch::tls::{tls, UserRegs};
use crate::fs::file::Transfer;
use crate::fs::host::{HostFile, HostKind};
use crate::fs::tmpfs::{self, Meta, Node, TmpFile};
use crate::fs::{File, OpenFile};
use crate::host::calls::{self as hc, HostFd};
use crate::mm::{Placement, Vma, VmaName, PAGE, PROT_READ};
use crate::signal::SigAction;
use crate::sync::SpinLock;

/// A tmpfs directory's entries as sent: (name, inode number).
type DirEntries = Vec<(String, u64)>;

/// Writes the state.
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
}

/// Reads the state; the sender is an enclave with our measurement, but a
/// malformed message still only fails the child.
struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Errno> {
        if n > self.0.len() {
            return Err(Errno::EPROTO);
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, Errno> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Errno> {
        let n = self.u64()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, Errno> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Errno::EPROTO)
    }
}

const KIND_EXEC: u8 = 1;
const KIND_FORK: u8 = 2;

/// What the child runs.
pub enum Start {
    Exec {
        path: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    },
    Fork {
        regs: UserRegs,
    },
}

/// Encode the fd table; returns the host fds the child must be given.
fn put_files(
    w: &mut W,
    files: &FdTable,
    host_fds: &mut Vec<HostFd>,
    tmp_nodes: &mut BTreeMap<(u32, u64), Arc<Node>>,
) {
    // Open file descriptions, each once (dup'ed fds share one).
    let mut descs: Vec<Arc<OpenFile>> = Vec::new();
    let index_of = |f: &Arc<OpenFile>, descs: &mut Vec<Arc<OpenFile>>| -> u32 {
        match descs.iter().position(|d| Arc::ptr_eq(d, f)) {
            Some(i) => i as u32,
            None => {
                descs.push(f.clone());
                (descs.len() - 1) as u32
            }
        }
    };
    let fds: Vec<(i32, bool, u32)> = files
        .fds()
        .map(|(fd, e)| (fd, e.cloexec, index_of(&e.file, &mut descs)))
        .collect();
    w.u32(descs.len() as u32);
    for d in &descs {
        w.bytes(d.path.as_bytes());
        w.u32(d.flags());
        w.u64(*d.pos.lock());
        match d.file.transfer() {
            Transfer::Host { fd, kind, path } => {
                w.u8(1);
                w.u32(host_fds.len() as u32);
                host_fds.push(fd);
                w.u8(kind);
                w.bytes(path.as_bytes());
            }
            Transfer::Socket { fd, domain, kind } => {
                w.u8(2);
                w.u32(host_fds.len() as u32);
                host_fds.push(fd);
                w.u32(domain as u32);
                w.u32(kind);
            }
            Transfer::Reopen => w.u8(3),
            Transfer::Tmp { mount, node } => {
                w.u8(4);
                w.u32(mount);
                w.u64(node.ino);
                tmp_nodes.insert((mount, node.ino), node);
            }
            Transfer::Drop => w.u8(0),
        }
    }
    w.u32(fds.len() as u32);
    for (fd, cloexec, d) in fds {
        w.u32(fd as u32);
        w.u8(cloexec as u8);
        w.u32(d);
    }
}

/// Encode every tmpfs mount's tree (files, directories, links, and nodes
/// only open fds still reach).
fn put_tmpfs(w: &mut W, open: &BTreeMap<(u32, u64), Arc<Node>>) {
    let ns = crate::fs::policy::ns();
    let mounts: Vec<_> = ns.tmpfs_mounts().collect();
    w.u32(mounts.len() as u32);
    for fs in mounts {
        w.u32(fs.index);
        w.u64(fs.next_ino());
        // Open but unlinked nodes are not reachable from the root.
        let extra: Vec<Arc<Node>> = open
            .iter()
            .filter(|((m, _), _)| *m == fs.index)
            .map(|(_, n)| n.clone())
            .collect();
        let nodes = fs.nodes(&extra);
        w.u32(nodes.len() as u32);
        for n in &nodes {
            let m = *n.meta.lock();
            w.u64(n.ino);
            w.u32(m.mode);
            w.u64(m.nlink);
            for (s, ns_) in [m.atime, m.mtime, m.ctime] {
                w.u64(s as u64);
                w.u64(ns_ as u64);
            }
            match &n.kind {
                tmpfs::Kind::File(d) => {
                    w.u8(0);
                    w.bytes(&d.lock());
                }
                tmpfs::Kind::Dir(d) => {
                    w.u8(1);
                    let d = d.lock();
                    w.u32(d.len() as u32);
                    for (name, c) in d.iter() {
                        w.bytes(name.as_bytes());
                        w.u64(c.ino);
                    }
                }
                tmpfs::Kind::Symlink(t) => {
                    w.u8(2);
                    w.bytes(t.as_bytes());
                }
                tmpfs::Kind::Socket(name) => {
                    w.u8(3);
                    w.bytes(name.as_bytes());
                }
            }
        }
    }
}

/// The parts of the process state both kinds of child get.
fn encode_common(
    w: &mut W,
    child_pid: u32,
    proc: &Process,
    view: &View,
    host_fds: &mut Vec<HostFd>,
) {
    w.u32(child_pid);
    w.u32(proc.pid);
    w.bytes(view.cwd.as_bytes());
    w.u32(view.umask);
    w.u32(view.pgid);
    w.u32(view.sid);
    w.u64(view.mask);
    for a in view.actions.iter() {
        w.u64(a.handler);
        w.u64(a.flags);
        w.u64(a.restorer);
        w.u64(a.mask);
    }
    let rl = *proc.rlimits.lock();
    for r in rl.iter() {
        w.u64(r.cur);
        w.u64(r.max);
    }
    let cpuid = crate::arch::cpuid::known();
    w.u32(cpuid.len() as u32);
    for (leaf, subleaf, regs) in cpuid {
        w.u32(leaf);
        w.u32(subleaf);
        regs.iter().for_each(|&v| w.u32(v));
    }
    // AF_UNIX sockets in tmpfs: the run key and the names known.
    let net = crate::net::unix::inherited();
    w.0.extend_from_slice(&net.key);
    w.bytes(net.dir.as_bytes());
    w.u32(net.names.len() as u32);
    for (name, given) in &net.names {
        w.bytes(name.as_bytes());
        w.bytes(given);
    }
    let mut tmp = BTreeMap::new();
    put_files(w, &view.files, host_fds, &mut tmp);
    put_tmpfs(w, &tmp);
}

/// The current vfork child's view, or the process's.
pub struct View {
    pub files: FdTable,
    pub cwd: String,
    pub umask: u32,
    pub actions: [SigAction; 64],
    pub mask: u64,
    /// Process group and session; 0: the child's own pid.
    pub pgid: u32,
    pub sid: u32,
}

/// Start a child enclave process running `start` with `view`; returns its pid.
pub fn spawn(view: &View, start: Start) -> Result<u32, Errno> {
    let proc = process();
    let mut host_fds = Vec::new();
    // Encode first with a placeholder pid: which host fds to pass must be
    // known before the child exists.
    let mut probe = W(Vec::new());
    encode_common(&mut probe, 0, proc, view, &mut host_fds);
    // A forked child maps the same shared host memory at the same places.
    let shared = match start {
        Start::Fork { .. } => proc.mm.shared_maps(),
        Start::Exec { .. } => Vec::new(),
    };
    let shared_fd_base = host_fds.len();
    for (_, m) in &shared {
        host_fds.push(m.file.file.host_fd().ok_or(Errno::EIO)?);
    }
    let (pid, chan_fd) = hc::spawn_process(&host_fds)?;
    let mut chan = Channel::parent(chan_fd)?;
    let mut w = W(Vec::new());
    let mut again = Vec::new();
    w.u8(match start {
        Start::Exec { .. } => KIND_EXEC,
        Start::Fork { .. } => KIND_FORK,
    });
    encode_common(&mut w, pid, proc, view, &mut again);
    w.bytes(
        &host_fds
            .iter()
            .flat_map(|f| f.0.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    match &start {
        Start::Exec { path, argv, envp } => {
            w.bytes(path);
            w.u32(argv.len() as u32);
            for a in argv {
                w.bytes(a);
            }
            w.u32(envp.len() as u32);
            for e in envp {
                w.bytes(e);
            }
        }
        Start::Fork { regs } => {
            // SAFETY: UserRegs is plain u64 fields.
            let rb = unsafe {
                core::slice::from_raw_parts(
                    regs as *const UserRegs as *const u8,
                    core::mem::size_of::<UserRegs>(),
                )
            };
            w.bytes(rb);
            let t = tls();
            w.bytes(&t.xmm);
            w.u32(t.mxcsr);
            w.bytes(proc.exe.lock().as_bytes());
            w.bytes(&proc.cmdline.lock());
            w.bytes(&proc.environ.lock());
            let (bs, b, bl, top) = proc.mm.brk_state();
            for v in [bs, b, bl, top] {
                w.u64(v);
            }
            w.u32(shared.len() as u32);
            for (i, (start, m)) in shared.iter().enumerate() {
                for v in [
                    *start,
                    m.end,
                    m.offset,
                    m.prot as u64,
                    (shared_fd_base + i) as u64,
                ] {
                    w.u64(v);
                }
                w.bytes(m.file.path.as_bytes());
                w.u32(m.file.flags());
            }
        }
    }
    send_big(&mut chan, &w.0)?;
    if let Start::Fork { .. } = start {
        send_memory(&mut chan)?;
    }
    // The child confirms it has everything before we return (and may close
    // files it shares with us).
    let ack = chan.recv()?;
    if ack.as_slice() != b"ok" {
        return Err(Errno::EIO);
    }
    proc.children
        .lock()
        .insert(pid, super::Child { status: None });
    Ok(pid)
}

/// Send a long message as a count of pieces and the pieces.
fn send_big(chan: &mut Channel, b: &[u8]) -> Result<(), Errno> {
    let n = b.len().div_ceil(MAX_MSG).max(1);
    chan.send(&(n as u64).to_le_bytes())?;
    for piece in b.chunks(MAX_MSG) {
        chan.send(piece)?;
    }
    if b.is_empty() {
        chan.send(&[])?;
    }
    Ok(())
}

fn recv_big(chan: &mut Channel) -> Result<Vec<u8>, Errno> {
    let n = u64::from_le_bytes(
        chan.recv()?
            .as_slice()
            .try_into()
            .map_err(|_| Errno::EPROTO)?,
    );
    if n > 1 << 16 {
        return Err(Errno::EPROTO);
    }
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(&chan.recv()?);
    }
    Ok(out)
}

/// Every mapping: its description, then its non-zero pages.
fn send_memory(chan: &mut Channel) -> Result<(), Errno> {
    let mm = &process().mm;
    let areas = mm.areas();
    let mut sent = 0;
    chan.send(&(areas.len() as u64).to_le_bytes())?;
    for (start, v) in areas {
        let mut h = W(Vec::new());
        h.u64(start);
        h.u64(v.end);
        h.u32(v.prot);
        h.u8(v.shared as u8);
        let (kind, name): (u8, &str) = match &v.name {
            VmaName::Anon => (0, ""),
            VmaName::Stack => (1, ""),
            VmaName::Heap => (2, ""),
            VmaName::File(f) => (3, f),
        };
        h.u8(kind);
        h.bytes(name.as_bytes());
        h.u64(v.offset);
        h.u64(v.inode);
        // A readable file mapping that loads lazily stays lazy in the child:
        // it gets the file's place and only the pages loaded here that the
        // program may have changed (none if the mapping was never
        // writable: code and read-only data); the rest it loads itself.
        let lazy = match (&v.lazy, &v.name) {
            (Some(lz), VmaName::File(_))
                if v.prot & PROT_READ != 0
                    && start >= lz.start
                    && matches!(lz.file.transfer(), Transfer::Reopen) =>
            {
                Some(lz.clone())
            }
            _ => None,
        };
        match &lazy {
            Some(lz) => {
                let skip = start - lz.start;
                h.u8(1);
                h.u64(lz.file_off + skip);
                h.u64(lz.file_len.saturating_sub(skip));
            }
            None => h.u8(0),
        }
        chan.send(&h.0)?;
        if v.prot == 0 {
            chan.send(&[])?;
            continue;
        }
        match lazy {
            // SAFETY (both): pages of this mapping, readable (loaded ones of
            // a readable lazy mapping; or made readable just now).
            Some(lz) if lz.pristine() => {}
            Some(lz) => {
                sent += send_pages(chan, start, v.end, |at| {
                    lz.is_loaded(at).then(|| unsafe {
                        core::slice::from_raw_parts(at as *const u8, PAGE as usize)
                    })
                })?
            }
            None => {
                mm.readable(start, v.end - start)?;
                sent += send_pages(chan, start, v.end, |at| {
                    let page =
                        unsafe { core::slice::from_raw_parts(at as *const u8, PAGE as usize) };
                    (!all_zero(page)).then_some(page)
                })?;
                mm.restore_prot(start, v.end - start)?;
            }
        }
        chan.send(&[])?;
    }
    debug!(
        "fork: {} KiB of memory sent to the child (file mappings never written are loaded there again)",
        sent * PAGE / 1024
    );
    Ok(())
}

/// Whether `page` holds only zeros. Most of a process's anonymous memory
/// was never written (a stack's reserve, heap arenas): a byte at a time,
/// checking it was the hottest loop of a Python fork.
fn all_zero(page: &[u8]) -> bool {
    let (words, rest) = page.as_chunks::<32>();
    words.iter().all(|w| {
        let [a, b, c, d] =
            [0, 8, 16, 24].map(|i| u64::from_ne_bytes(w[i..i + 8].try_into().unwrap()));
        a | b | c | d == 0
    }) && rest.iter().all(|&b| b == 0)
}

/// The pages of `[start, end)` that `pick` returns, as (address, bytes)
/// records in messages of at most MAX_MSG bytes.
/// Returns how many pages it sent.
fn send_pages<'a>(
    chan: &mut Channel,
    start: u64,
    end: u64,
    pick: impl Fn(u64) -> Option<&'a [u8]>,
) -> Result<u64, Errno> {
    let mut at = start;
    let mut sent = 0;
    while at < end {
        let mut msg = W(Vec::with_capacity(MAX_MSG));
        while at < end && msg.0.len() + PAGE as usize + 16 <= MAX_MSG {
            if let Some(page) = pick(at) {
                msg.u64(at);
                msg.0.extend_from_slice(page);
                sent += 1;
            }
            at += PAGE;
        }
        if !msg.0.is_empty() {
            chan.send(&msg.0)?;
        }
    }
    Ok(sent)
}

/// The child's side: rebuild what the parent sent, then start the program.
pub fn child_boot(
    stack_size: u64,
    brk_max: u64,
    make_process: impl FnOnce(u32, u32) -> &'static Process,
) -> Result<UserRegs, Errno> {
    // The host fds come as this process's host numbers them (a conf-run
    // started ahead of need gets them later, at other numbers than the
    // parent's); the parent's list only says how many to expect.
    // Started ahead of need: verify what the run's last exec loaded while
    // the work has not come.
    crate::fs::prefetch::verify_while_waiting();
    let (chan_fd, inherited) = hc::child_start()?;
    let mut chan = Channel::child(chan_fd)?;
    let state = recv_big(&mut chan)?;
    let mut r = R(&state);
    let kind = r.u8()?;
    let pid = r.u32()?;
    let ppid = r.u32()?;
    let proc = make_process(pid, ppid);
    let cwd = r.string()?;
    let umask = r.u32()?;
    let own = |id: u32| if id == 0 { pid } else { id };
    proc.pgid.store(own(r.u32()?), Ordering::Relaxed);
    proc.sid.store(own(r.u32()?), Ordering::Relaxed);
    let mask = r.u64()?;
    let mut actions = [SigAction::default(); 64];
    for a in actions.iter_mut() {
        *a = SigAction {
            handler: r.u64()?,
            flags: r.u64()?,
            restorer: r.u64()?,
            mask: r.u64()?,
        };
    }
    let mut rl = [Rlimit { cur: 0, max: 0 }; RLIM_NLIMITS];
    for x in rl.iter_mut() {
        *x = Rlimit {
            cur: r.u64()?,
            max: r.u64()?,
        };
    }
    let n = r.u32()?;
    let mut cpuid = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        cpuid.push((r.u32()?, r.u32()?, [r.u32()?, r.u32()?, r.u32()?, r.u32()?]));
    }
    crate::arch::cpuid::learn(&cpuid);
    let key: [u8; 32] = r.take(32)?.try_into().map_err(|_| Errno::EPROTO)?;
    let dir = r.string()?;
    let n = r.u32()?;
    let mut names = Vec::new();
    for _ in 0..n {
        names.push((r.string()?, r.bytes()?.to_vec()));
    }
    crate::net::unix::inherit(crate::net::unix::Inherited { key, dir, names });
    // Descriptions first (the host fds they name come after the tmpfs).
    struct Desc {
        path: String,
        flags: u32,
        pos: u64,
        how: u8,
        a: u32,
        b: u64,
        c: u32,
        hpath: String,
    }
    let nd = r.u32()? as usize;
    let mut descs = Vec::with_capacity(nd.min(65536));
    for _ in 0..nd {
        let path = r.string()?;
        let flags = r.u32()?;
        let pos = r.u64()?;
        let how = r.u8()?;
        let (mut a, mut b, mut c, mut hpath) = (0, 0, 0, String::new());
        match how {
            1 => {
                a = r.u32()?;
                c = r.u8()? as u32;
                hpath = r.string()?;
            }
            2 => {
                a = r.u32()?;
                b = r.u32()? as u64;
                c = r.u32()?;
            }
            4 => {
                a = r.u32()?;
                b = r.u64()?;
            }
            _ => {}
        }
        descs.push(Desc {
            path,
            flags,
            pos,
            how,
            a,
            b,
            c,
            hpath,
        });
    }
    let nf = r.u32()? as usize;
    let mut fds = Vec::with_capacity(nf.min(65536));
    for _ in 0..nf {
        fds.push((r.u32()? as i32, r.u8()? != 0, r.u32()? as usize));
    }
    // tmpfs trees.
    let ns = crate::fs::policy::ns();
    let nm = r.u32()?;
    let mut tmp_nodes: BTreeMap<(u32, u64), Arc<Node>> = BTreeMap::new();
    for _ in 0..nm {
        let index = r.u32()?;
        let next_ino = r.u64()?;
        let n = r.u32()? as usize;
        let mut nodes: Vec<(Arc<Node>, DirEntries)> = Vec::new();
        for _ in 0..n {
            let ino = r.u64()?;
            let mode = r.u32()?;
            let nlink = r.u64()?;
            let mut t = [(0i64, 0i64); 3];
            for x in t.iter_mut() {
                *x = (r.u64()? as i64, r.u64()? as i64);
            }
            let meta = Meta {
                mode,
                nlink,
                atime: t[0],
                mtime: t[1],
                ctime: t[2],
            };
            let (kind, entries) = match r.u8()? {
                0 => (
                    tmpfs::Kind::File(SpinLock::new(r.bytes()?.to_vec())),
                    Vec::new(),
                ),
                1 => {
                    let k = r.u32()? as usize;
                    let mut e = Vec::new();
                    for _ in 0..k {
                        e.push((r.string()?, r.u64()?));
                    }
                    (tmpfs::Kind::Dir(SpinLock::new(BTreeMap::new())), e)
                }
                2 => (tmpfs::Kind::Symlink(r.string()?), Vec::new()),
                3 => (tmpfs::Kind::Socket(r.string()?), Vec::new()),
                _ => return Err(Errno::EPROTO),
            };
            nodes.push((
                Arc::new(Node {
                    ino,
                    kind,
                    meta: SpinLock::new(meta),
                }),
                entries,
            ));
        }
        let by_ino: BTreeMap<u64, Arc<Node>> =
            nodes.iter().map(|(n, _)| (n.ino, n.clone())).collect();
        for (n, entries) in &nodes {
            if let tmpfs::Kind::Dir(d) = &n.kind {
                let mut d = d.lock();
                for (name, ino) in entries {
                    if let Some(c) = by_ino.get(ino) {
                        d.insert(name.clone(), c.clone());
                    }
                }
            }
        }
        if let (Some(fs), Some(root)) = (ns.tmpfs_by_index(index), by_ino.get(&1)) {
            fs.install(root.clone(), next_ino);
            for (ino, n) in by_ino {
                tmp_nodes.insert((index, ino), n);
            }
        }
    }
    if r.bytes()?.len() != inherited.len() * 4 {
        return Err(Errno::EPROTO);
    }
    let passed = inherited;
    // Rebuild the descriptions and the table.
    let mut opened: Vec<Option<Arc<OpenFile>>> = Vec::with_capacity(descs.len());
    for d in &descs {
        let file: Option<Arc<dyn File>> = match d.how {
            1 => passed.get(d.a as usize).map(|&fd| {
                Arc::new(HostFile::inherited(
                    fd,
                    HostKind::from_code(d.c as u8).unwrap_or(HostKind::Stream),
                    d.hpath.clone(),
                )) as Arc<dyn File>
            }),
            2 => passed.get(d.a as usize).map(|&fd| {
                Arc::new(crate::net::Socket {
                    fd,
                    domain: d.b as u16,
                    kind: d.c,
                }) as Arc<dyn File>
            }),
            3 => crate::fs::policy::open(
                "/",
                d.path.as_bytes(),
                d.flags & crate::fs::oflags::O_ACCMODE,
                0,
            )
            .ok()
            .map(|of| of.file.clone()),
            4 => match (ns.tmpfs_by_index(d.a), tmp_nodes.get(&(d.a, d.b))) {
                (Some(fs), Some(n)) => Some(Arc::new(TmpFile {
                    fs,
                    node: n.clone(),
                }) as Arc<dyn File>),
                _ => None,
            },
            _ => None,
        };
        opened.push(file.map(|f| {
            let of = OpenFile::new(f, d.flags, d.path.clone());
            *of.pos.lock() = d.pos;
            of
        }));
    }
    {
        let mut t = proc.files.lock();
        for (fd, cloexec, di) in fds {
            if let Some(Some(of)) = opened.get(di) {
                t.put(
                    fd as usize,
                    FdEntry {
                        file: of.clone(),
                        cloexec,
                    },
                );
            }
        }
    }
    *proc.cwd.lock() = cwd;
    proc.umask.store(umask, Ordering::Relaxed);
    proc.signals.lock().actions = actions;
    *proc.rlimits.lock() = rl;
    super::current().sigmask.store(mask, Ordering::Relaxed);

    let regs = match kind {
        KIND_EXEC => {
            let path = r.bytes()?.to_vec();
            let n = r.u32()? as usize;
            let mut argv = Vec::new();
            for _ in 0..n.min(65536) {
                argv.push(r.bytes()?.to_vec());
            }
            let n = r.u32()? as usize;
            let mut envp = Vec::new();
            for _ in 0..n.min(65536) {
                envp.push(r.bytes()?.to_vec());
            }
            chan.send(b"ok")?;
            drop(proc.files.lock().close_on_exec());
            crate::signal::reset_for_exec();
            match super::exec::load(proc, &path, argv, envp, stack_size, brk_max) {
                Ok(regs) => regs,
                Err(e) => {
                    error!(
                        "cannot start {}: {}",
                        String::from_utf8_lossy(&path),
                        e.message
                    );
                    crate::process::exit::exit_group(127 << 8)
                }
            }
        }
        KIND_FORK => {
            let rb = r.bytes()?;
            if rb.len() != core::mem::size_of::<UserRegs>() {
                return Err(Errno::EPROTO);
            }
            let mut regs = UserRegs::default();
            // SAFETY: UserRegs is plain u64 fields; sizes checked.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    rb.as_ptr(),
                    &mut regs as *mut UserRegs as *mut u8,
                    rb.len(),
                )
            };
            let xmm = r.bytes()?;
            let t = tls();
            if xmm.len() == t.xmm.len() {
                t.xmm.copy_from_slice(xmm);
            }
            t.mxcsr = r.u32()?;
            *proc.exe.lock() = r.string()?;
            *proc.cmdline.lock() = r.bytes()?.to_vec();
            *proc.environ.lock() = r.bytes()?.to_vec();
            let (bs, b, bl, top) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let n = r.u32()?;
            for _ in 0..n {
                let (start, end, offset, prot, fd_index) =
                    (r.u64()?, r.u64()?, r.u64()?, r.u64()? as u32, r.u64()?);
                let path = r.string()?;
                let flags = r.u32()?;
                let fd = *passed.get(fd_index as usize).ok_or(Errno::EPROTO)?;
                if end <= start {
                    return Err(Errno::EPROTO);
                }
                let (id, at) = hc::map_shared(fd, end - start, offset, prot, start)?;
                if at != start {
                    crate::host::hostile(
                        conf_abi::ocall::Ocall::MapShared,
                        "a shared mapping somewhere else than asked",
                    );
                }
                let file = OpenFile::new(
                    Arc::new(HostFile::inherited(fd, HostKind::Regular, path.clone())),
                    flags,
                    path,
                );
                proc.mm.add_shared(
                    start,
                    crate::mm::SharedMap {
                        end,
                        prot,
                        id,
                        offset,
                        file,
                    },
                );
            }
            recv_memory(&mut chan)?;
            proc.mm.set_brk_state(bs, b, bl, top);
            chan.send(b"ok")?;
            regs
        }
        _ => return Err(Errno::EPROTO),
    };
    drop(chan);
    Ok(regs)
}

fn recv_memory(chan: &mut Channel) -> Result<(), Errno> {
    let mm = &process().mm;
    let n = u64::from_le_bytes(
        chan.recv()?
            .as_slice()
            .try_into()
            .map_err(|_| Errno::EPROTO)?,
    );
    for _ in 0..n {
        let h = chan.recv()?;
        let mut r = R(&h);
        let (start, end, prot, shared) = (r.u64()?, r.u64()?, r.u32()?, r.u8()? != 0);
        let kind = r.u8()?;
        let name = r.string()?;
        let offset = r.u64()?;
        let inode = r.u64()?;
        let lazy = match r.u8()? {
            1 => Some((r.u64()?, r.u64()?)),
            _ => None,
        };
        if start % PAGE != 0 || end <= start || end % PAGE != 0 {
            return Err(Errno::EPROTO);
        }
        let vname = match kind {
            1 => VmaName::Stack,
            2 => VmaName::Heap,
            3 => VmaName::File(Arc::from(name.as_str())),
            _ => VmaName::Anon,
        };
        let vma = Vma {
            end: 0,
            prot: 0,
            shared,
            name: vname,
            offset,
            inode,
            lazy: None,
        };
        if let Some((file_off, file_len)) = lazy {
            // Loads from the file as the parent's did; the pages the parent
            // had loaded come next and replace what was loaded.
            let of = crate::fs::policy::open("/", name.as_bytes(), crate::fs::oflags::O_RDONLY, 0)?;
            mm.map_lazy(
                Placement::NoReplace(start),
                end - start,
                prot,
                vma,
                of.file.clone(),
                file_off,
                file_len,
            )?;
            recv_pages(chan, start, end, |lo, bytes| mm.install_pages(lo, bytes))?;
            continue;
        }
        mm.map(Placement::NoReplace(start), end - start, prot, vma, true)?;
        recv_pages(chan, start, end, |lo, bytes| {
            // SAFETY: inside the mapping just made writable (checked range).
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), lo as *mut u8, bytes.len()) };
            Ok(())
        })?;
        mm.finish_fill(start, end - start, prot)?;
    }
    Ok(())
}

/// Receive the page records [`send_pages`] sent for `[start, end)`, up to
/// the empty message, and hand each run of consecutive pages to `put`.
fn recv_pages(
    chan: &mut Channel,
    start: u64,
    end: u64,
    mut put: impl FnMut(u64, &[u8]) -> Result<(), Errno>,
) -> Result<(), Errno> {
    loop {
        let msg = chan.recv()?;
        if msg.is_empty() {
            return Ok(());
        }
        let mut m = R(&msg);
        let mut run: Option<(u64, Vec<u8>)> = None;
        while !m.0.is_empty() {
            let at = m.u64()?;
            let page = m.take(PAGE as usize)?;
            if at < start || at + PAGE > end || at % PAGE != 0 {
                return Err(Errno::EPROTO);
            }
            match &mut run {
                Some((lo, bytes)) if *lo + bytes.len() as u64 == at => {
                    bytes.extend_from_slice(page)
                }
                _ => {
                    if let Some((lo, bytes)) = run.take() {
                        put(lo, &bytes)?;
                    }
                    run = Some((at, page.to_vec()));
                }
            }
        }
        if let Some((lo, bytes)) = run {
            put(lo, &bytes)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::all_zero;

    #[test]
    fn a_page_is_zero_only_if_every_byte_is() {
        let mut page = alloc::vec![0u8; 4096];
        assert!(all_zero(&page));
        for at in [0, 7, 8, 31, 32, 2049, 4095] {
            page[at] = 1;
            assert!(!all_zero(&page), "byte {at}");
            page[at] = 0;
        }
        // Not a multiple of the word run: the tail counts too.
        let mut odd = alloc::vec![0u8; 45];
        assert!(all_zero(&odd));
        odd[44] = 0x80;
        assert!(!all_zero(&odd));
    }
}
