//! /proc and /sys as programs read them, generated inside the enclave from
//! the LibOS's own state (nothing here comes from the host).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use conf_abi::Errno;

use super::file::{DirEntry, File, OpenFile};
use super::host::KernelStat;
use super::{mode, oflags};
use crate::process::process;

/// What a /proc or /sys path is.
pub enum Node {
    Dir(Vec<(String, u8)>),
    File(Vec<u8>),
    Link(String),
    /// /proc/self/fd/N: the open file itself.
    Fd(Arc<OpenFile>),
}

const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

/// Is `p` handled here?
pub fn owns(p: &str) -> bool {
    p == "/proc" || p.starts_with("/proc/") || p == "/sys" || p.starts_with("/sys/")
}

fn pid_dir_entries() -> Vec<(String, u8)> {
    [
        ("exe", DT_LNK),
        ("cwd", DT_LNK),
        ("root", DT_LNK),
        ("fd", DT_DIR),
        ("task", DT_DIR),
        ("maps", DT_REG),
        ("status", DT_REG),
        ("stat", DT_REG),
        ("statm", DT_REG),
        ("cmdline", DT_REG),
        ("environ", DT_REG),
        ("comm", DT_REG),
        ("mounts", DT_REG),
        ("mountinfo", DT_REG),
        ("limits", DT_REG),
        ("auxv", DT_REG),
        ("cgroup", DT_REG),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), *t))
    .collect()
}

fn mounts_text() -> String {
    let m = &crate::boot::enclave().manifest;
    let mut s = String::from("conf / conf rw,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\nsysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n");
    for mt in &m.mounts {
        let _ = writeln!(
            s,
            "{} {} {} rw,relatime 0 0",
            if mt.uri.is_empty() { "none" } else { &mt.uri },
            mt.path,
            mt.kind.name()
        );
    }
    s
}

fn mountinfo_text() -> String {
    let mut s = String::new();
    for (i, line) in mounts_text().lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        let _ = writeln!(
            s,
            "{} 1 0:{} / {} {} - {} {} {}",
            20 + i,
            20 + i,
            f[1],
            f[3],
            f[2],
            f[0],
            f[3]
        );
    }
    s
}

fn ncpus() -> u64 {
    crate::boot::host_cpus()
}

fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let [a, b, c, d] = crate::arch::cpuid::cpuid(leaf, sub);
    (a, b, c, d)
}

fn brand() -> String {
    let mut b = Vec::new();
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let (a, bb, c, d) = cpuid(leaf, 0);
        for r in [a, bb, c, d] {
            b.extend_from_slice(&r.to_le_bytes());
        }
    }
    String::from_utf8_lossy(&b)
        .trim_matches(char::from(0))
        .trim()
        .to_string()
}

fn cpu_flags() -> String {
    let (_, _, ecx, edx) = cpuid(1, 0);
    let (_, ebx7, ecx7, _) = cpuid(7, 0);
    let mut f = Vec::new();
    let edx_names = [
        (0, "fpu"),
        (4, "tsc"),
        (5, "msr"),
        (8, "cx8"),
        (15, "cmov"),
        (19, "clflush"),
        (23, "mmx"),
        (24, "fxsr"),
        (25, "sse"),
        (26, "sse2"),
        (28, "ht"),
    ];
    for (bit, n) in edx_names {
        if edx & (1 << bit) != 0 {
            f.push(n);
        }
    }
    let ecx_names = [
        (0, "pni"),
        (1, "pclmulqdq"),
        (9, "ssse3"),
        (12, "fma"),
        (13, "cx16"),
        (19, "sse4_1"),
        (20, "sse4_2"),
        (22, "movbe"),
        (23, "popcnt"),
        (25, "aes"),
        (26, "xsave"),
        (28, "avx"),
        (29, "f16c"),
        (30, "rdrand"),
    ];
    for (bit, n) in ecx_names {
        if ecx & (1 << bit) != 0 {
            f.push(n);
        }
    }
    let ebx7_names = [
        (0, "fsgsbase"),
        (3, "bmi1"),
        (5, "avx2"),
        (8, "bmi2"),
        (9, "erms"),
        (16, "avx512f"),
        (18, "rdseed"),
        (19, "adx"),
        (29, "sha_ni"),
        (30, "avx512bw"),
        (31, "avx512vl"),
    ];
    for (bit, n) in ebx7_names {
        if ebx7 & (1 << bit) != 0 {
            f.push(n);
        }
    }
    if ecx7 & (1 << 8) != 0 {
        f.push("gfni");
    }
    f.join(" ")
}

fn cpuinfo() -> String {
    let (_, b, c, d) = cpuid(0, 0);
    let mut vendor = Vec::new();
    for r in [b, d, c] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let vendor = String::from_utf8_lossy(&vendor).into_owned();
    let (sig, _, _, _) = cpuid(1, 0);
    let family = ((sig >> 8) & 0xf) + ((sig >> 20) & 0xff);
    let model = ((sig >> 4) & 0xf) | ((sig >> 12) & 0xf0);
    let (name, flags) = (brand(), cpu_flags());
    let mut s = String::new();
    let n = ncpus();
    for i in 0..n {
        let _ = write!(
            s,
            "processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\nstepping\t: {}\nphysical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {i}\ncpu cores\t: {n}\napicid\t\t: {i}\nfpu\t\t: yes\nflags\t\t: {flags}\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n",
            sig & 0xf
        );
    }
    s
}

fn meminfo() -> String {
    let total = crate::boot::enclave().info.heap_size / 1024;
    let used = process().mm.mapped_bytes() / 1024;
    let free = total.saturating_sub(used);
    format!(
        "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nShmem:                 0 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n"
    )
}

fn status() -> String {
    let p = process();
    let exe = p.exe.lock().clone();
    let name: String = exe
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    let t = crate::process::current();
    let vm = p.mm.mapped_bytes() / 1024;
    let threads = crate::process::threads::live_threads();
    let mask = t.sigmask.load(core::sync::atomic::Ordering::Relaxed);
    let n = ncpus();
    format!(
        "Name:\t{name}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t\nVmPeak:\t{vm:>8} kB\nVmSize:\t{vm:>8} kB\nVmRSS:\t{vm:>8} kB\nVmHWM:\t{vm:>8} kB\nThreads:\t{threads}\nSigQ:\t0/0\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t{mask:016x}\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCpus_allowed_list:\t0-{}\nMems_allowed_list:\t0\n",
        p.umask.load(core::sync::atomic::Ordering::Relaxed),
        n - 1,
        pid = p.pid,
        ppid = p.ppid
    )
}

fn stat_line() -> String {
    let p = process();
    let exe = p.exe.lock().clone();
    let name: String = exe
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();
    let vm = p.mm.mapped_bytes();
    format!(
        "{} ({}) R {} {} {} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 {} 0 0 {} {} 18446744073709551615 0 0 {} 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
        p.pid,
        name,
        p.ppid,
        p.pid,
        p.pid,
        crate::process::threads::live_threads(),
        vm,
        vm / 4096,
        crate::process::stack_top()
    )
}

fn system_stat() -> String {
    let mut s = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
    for i in 0..ncpus() {
        let _ = writeln!(s, "cpu{i} 0 0 0 0 0 0 0 0 0 0");
    }
    let boot = crate::time::clock_gettime(0).map(|(s, _)| s).unwrap_or(0)
        - (crate::time::monotonic_ns() / 1_000_000_000) as i64;
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {boot}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n"
    );
    s
}

fn limits() -> String {
    let names = [
        "Max cpu time",
        "Max file size",
        "Max data size",
        "Max stack size",
        "Max core file size",
        "Max resident set",
        "Max processes",
        "Max open files",
        "Max locked memory",
        "Max address space",
        "Max file locks",
        "Max pending signals",
        "Max msgqueue size",
        "Max nice priority",
        "Max realtime priority",
        "Max realtime timeout",
    ];
    let rl = *process().rlimits.lock();
    let mut s = String::from(
        "Limit                     Soft Limit           Hard Limit           Units     \n",
    );
    let v = |x: u64| {
        if x == u64::MAX {
            String::from("unlimited")
        } else {
            x.to_string()
        }
    };
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(s, "{:<26}{:<21}{:<21}", n, v(rl[i].cur), v(rl[i].max));
    }
    s
}

fn cpu_list() -> String {
    format!("0-{}\n", ncpus() - 1)
}

/// Look up a /proc or /sys path.
pub fn lookup(p: &str) -> Result<Node, Errno> {
    let proc_ = process();
    let pid = proc_.pid.to_string();
    if p == "/proc" {
        let mut e: Vec<(String, u8)> = ["self", "thread-self"]
            .iter()
            .map(|n| (n.to_string(), DT_LNK))
            .collect();
        e.push((pid.clone(), DT_DIR));
        for n in [
            "cpuinfo",
            "meminfo",
            "mounts",
            "filesystems",
            "stat",
            "uptime",
            "version",
            "loadavg",
        ] {
            e.push((n.to_string(), DT_REG));
        }
        e.push(("sys".to_string(), DT_DIR));
        return Ok(Node::Dir(e));
    }
    if let Some(rest) = p.strip_prefix("/proc/") {
        let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let is_self = first == "self" || first == pid || first == "thread-self";
        if (first == "self" || first == "thread-self") && tail.is_empty() {
            return Ok(Node::Link(pid));
        }
        if is_self {
            return lookup_pid(tail);
        }
        return Ok(match rest {
            "cpuinfo" => Node::File(cpuinfo().into_bytes()),
            "meminfo" => Node::File(meminfo().into_bytes()),
            "mounts" => Node::Link(format!("{pid}/mounts")),
            "filesystems" => {
                Node::File(b"nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\n".to_vec())
            }
            "stat" => Node::File(system_stat().into_bytes()),
            "uptime" => {
                let up = crate::time::monotonic_ns();
                Node::File(
                    format!(
                        "{}.{:02} 0.00\n",
                        up / 1_000_000_000,
                        (up / 10_000_000) % 100
                    )
                    .into_bytes(),
                )
            }
            "version" => Node::File(b"Linux version 6.6.0-conf (conf) #1 SMP conf\n".to_vec()),
            "loadavg" => Node::File(b"0.00 0.00 0.00 1/1 1\n".to_vec()),
            "sys" => Node::Dir(alloc::vec![
                ("kernel".to_string(), DT_DIR),
                ("vm".to_string(), DT_DIR)
            ]),
            "sys/kernel" => Node::Dir(
                [
                    "osrelease",
                    "ostype",
                    "pid_max",
                    "threads-max",
                    "hostname",
                    "random",
                ]
                .iter()
                .map(|n| (n.to_string(), if *n == "random" { DT_DIR } else { DT_REG }))
                .collect(),
            ),
            "sys/kernel/osrelease" => Node::File(b"6.6.0-conf\n".to_vec()),
            "sys/kernel/ostype" => Node::File(b"Linux\n".to_vec()),
            "sys/kernel/pid_max" => Node::File(b"4194304\n".to_vec()),
            "sys/kernel/threads-max" => {
                Node::File(format!("{}\n", crate::boot::enclave().info.nslots).into_bytes())
            }
            "sys/kernel/hostname" => Node::File(b"localhost\n".to_vec()),
            "sys/kernel/random" => Node::Dir(alloc::vec![
                ("boot_id".to_string(), DT_REG),
                ("uuid".to_string(), DT_REG)
            ]),
            "sys/kernel/random/boot_id" | "sys/kernel/random/uuid" => {
                let mut b = [0u8; 16];
                crate::arch::fill_random(&mut b);
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Node::File(
                    format!(
                        "{}-{}-{}-{}-{}\n",
                        &h[0..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..32]
                    )
                    .into_bytes(),
                )
            }
            "sys/vm" => Node::Dir(alloc::vec![
                ("overcommit_memory".to_string(), DT_REG),
                ("max_map_count".to_string(), DT_REG)
            ]),
            "sys/vm/overcommit_memory" => Node::File(b"0\n".to_vec()),
            "sys/vm/max_map_count" => Node::File(b"65530\n".to_vec()),
            _ => return Err(Errno::ENOENT),
        });
    }
    // /sys: just enough CPU topology for runtimes sizing their thread pools.
    let n = ncpus();
    let cpu = "/sys/devices/system/cpu";
    match p {
        "/sys" => Ok(Node::Dir(alloc::vec![
            ("devices".to_string(), DT_DIR),
            ("fs".to_string(), DT_DIR)
        ])),
        "/sys/fs" => Ok(Node::Dir(Vec::new())),
        "/sys/devices" => Ok(Node::Dir(alloc::vec![("system".to_string(), DT_DIR)])),
        "/sys/devices/system" => Ok(Node::Dir(alloc::vec![("cpu".to_string(), DT_DIR)])),
        _ if p == cpu => {
            let mut e: Vec<(String, u8)> = (0..n).map(|i| (format!("cpu{i}"), DT_DIR)).collect();
            for f in ["online", "possible", "present"] {
                e.push((f.to_string(), DT_REG));
            }
            Ok(Node::Dir(e))
        }
        _ => {
            let rest = p
                .strip_prefix(cpu)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or(Errno::ENOENT)?;
            match rest {
                "online" | "possible" | "present" => Ok(Node::File(cpu_list().into_bytes())),
                _ => {
                    let (c, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    let i: u64 = c
                        .strip_prefix("cpu")
                        .and_then(|x| x.parse().ok())
                        .ok_or(Errno::ENOENT)?;
                    if i >= n {
                        return Err(Errno::ENOENT);
                    }
                    match tail {
                        "" => Ok(Node::Dir(alloc::vec![
                            ("online".to_string(), DT_REG),
                            ("topology".to_string(), DT_DIR)
                        ])),
                        "online" => Ok(Node::File(b"1\n".to_vec())),
                        "topology" => Ok(Node::Dir(
                            [
                                "core_id",
                                "physical_package_id",
                                "thread_siblings_list",
                                "core_siblings_list",
                            ]
                            .iter()
                            .map(|x| (x.to_string(), DT_REG))
                            .collect(),
                        )),
                        "topology/core_id" => Ok(Node::File(format!("{i}\n").into_bytes())),
                        "topology/physical_package_id" => Ok(Node::File(b"0\n".to_vec())),
                        "topology/thread_siblings_list" => {
                            Ok(Node::File(format!("{i}\n").into_bytes()))
                        }
                        "topology/core_siblings_list" => Ok(Node::File(cpu_list().into_bytes())),
                        _ => Err(Errno::ENOENT),
                    }
                }
            }
        }
    }
}

fn lookup_pid(tail: &str) -> Result<Node, Errno> {
    let p = process();
    Ok(match tail {
        "" => Node::Dir(pid_dir_entries()),
        "exe" => Node::Link(p.exe.lock().clone()),
        "cwd" => Node::Link(p.cwd()),
        "root" => Node::Link(String::from("/")),
        "maps" => Node::File(p.mm.maps().into_bytes()),
        "status" => Node::File(status().into_bytes()),
        "stat" => Node::File(stat_line().into_bytes()),
        "statm" => {
            let pages = p.mm.mapped_bytes() / 4096;
            Node::File(format!("{pages} {pages} 0 0 0 0 0\n").into_bytes())
        }
        "cmdline" => Node::File(p.cmdline.lock().clone()),
        "environ" => Node::File(p.environ.lock().clone()),
        "comm" => {
            let exe = p.exe.lock().clone();
            let name: String = exe
                .rsplit('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(15)
                .collect();
            Node::File(format!("{name}\n").into_bytes())
        }
        "mounts" => Node::File(mounts_text().into_bytes()),
        "mountinfo" => Node::File(mountinfo_text().into_bytes()),
        "limits" => Node::File(limits().into_bytes()),
        "cgroup" => Node::File(b"0::/\n".to_vec()),
        "auxv" => Node::File(alloc::vec![0u8; 16]),
        "fd" => Node::Dir(
            p.files
                .lock()
                .fds()
                .map(|(fd, _)| (fd.to_string(), DT_LNK))
                .collect(),
        ),
        "task" => Node::Dir(alloc::vec![(p.pid.to_string(), DT_DIR)]),
        _ => {
            if let Some(n) = tail.strip_prefix("fd/") {
                let fd: i32 = n.parse().map_err(|_| Errno::ENOENT)?;
                return Ok(Node::Fd(p.files.lock().get(fd).map_err(|_| Errno::ENOENT)?));
            }
            if let Some(t) = tail.strip_prefix("task/") {
                let (tid, rest) = t.split_once('/').unwrap_or((t, ""));
                if tid.parse::<u32>().is_err() {
                    return Err(Errno::ENOENT);
                }
                return lookup_pid(rest);
            }
            return Err(Errno::ENOENT);
        }
    })
}

/// A generated file: its contents are fixed when it is opened.
pub struct GenFile {
    data: Vec<u8>,
    ino: u64,
}

impl File for GenFile {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let off = off.min(self.data.len() as u64) as usize;
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
    fn stat(&self) -> Result<KernelStat, Errno> {
        Ok(KernelStat {
            st_dev: 4,
            st_ino: self.ino,
            st_nlink: 1,
            st_mode: mode::S_IFREG | 0o444,
            st_blksize: 4096,
            ..Default::default()
        })
    }
    fn size(&self) -> Result<u64, Errno> {
        Ok(self.data.len() as u64)
    }
}

/// A generated directory.
pub struct GenDir {
    entries: Vec<(String, u8)>,
    ino: u64,
}

impl File for GenDir {
    fn stat(&self) -> Result<KernelStat, Errno> {
        Ok(KernelStat {
            st_dev: 4,
            st_ino: self.ino,
            st_nlink: 2,
            st_mode: mode::S_IFDIR | 0o555,
            st_blksize: 4096,
            ..Default::default()
        })
    }
    fn is_dir(&self) -> bool {
        true
    }
    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let mut v = alloc::vec![
            DirEntry {
                ino: self.ino,
                kind: DT_DIR,
                name: b".".to_vec()
            },
            DirEntry {
                ino: 1,
                kind: DT_DIR,
                name: b"..".to_vec()
            }
        ];
        for (i, (n, t)) in self.entries.iter().enumerate() {
            v.push(DirEntry {
                ino: self.ino * 64 + i as u64,
                kind: *t,
                name: n.as_bytes().to_vec(),
            });
        }
        Ok(v)
    }
}

fn ino_of(p: &str) -> u64 {
    // A stable number per path (FNV-1a), so repeated stats agree.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in p.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h >> 8
}

/// Follow /proc links in `p` (only the LibOS's own: self → pid, exe...).
pub fn follow(p: &str, follow_last: bool) -> Result<String, Errno> {
    let mut cur = String::from(p);
    for _ in 0..8 {
        // Find the first component that is a link.
        let mut prefix = String::new();
        let mut changed = false;
        let comps: Vec<&str> = cur.split('/').filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            prefix.push('/');
            prefix.push_str(c);
            let last = i + 1 == comps.len();
            if last && !follow_last {
                break;
            }
            if !owns(&prefix) {
                continue;
            }
            if let Ok(Node::Link(target)) = lookup(&prefix) {
                let rest: Vec<&str> = comps[i + 1..].to_vec();
                let base = if target.starts_with('/') {
                    target.clone()
                } else {
                    let parent = &prefix[..prefix.rfind('/').unwrap_or(0)];
                    format!("{}/{}", if parent.is_empty() { "" } else { parent }, target)
                };
                cur = if rest.is_empty() {
                    base
                } else {
                    format!("{}/{}", base.trim_end_matches('/'), rest.join("/"))
                };
                changed = true;
                break;
            }
        }
        if !changed {
            return Ok(cur);
        }
        if !owns(&cur) {
            return Ok(cur);
        }
    }
    Err(Errno::ELOOP)
}

/// open(2) of a /proc or /sys path.
pub fn open(p: &str, flags: u32) -> Result<Arc<OpenFile>, Errno> {
    if flags & oflags::O_ACCMODE != oflags::O_RDONLY || flags & oflags::O_CREAT != 0 {
        return Err(Errno::EACCES);
    }
    let p = follow(p, true)?;
    if !owns(&p) {
        return super::policy::open("/", p.as_bytes(), flags, 0);
    }
    let file: Arc<dyn File> = match lookup(&p)? {
        Node::Dir(entries) => Arc::new(GenDir {
            entries,
            ino: ino_of(&p),
        }),
        Node::File(data) => {
            if flags & oflags::O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            Arc::new(GenFile {
                data,
                ino: ino_of(&p),
            })
        }
        Node::Fd(of) => {
            // Reopening an fd: a new description of the same file.
            return Ok(OpenFile::new(
                of.file.clone(),
                (of.flags() & !oflags::O_ACCMODE) | (flags & oflags::O_ACCMODE),
                of.path.clone(),
            ));
        }
        Node::Link(_) => return Err(Errno::ELOOP),
    };
    Ok(OpenFile::new(file, flags & !oflags::O_CLOEXEC, p))
}

/// stat(2) of a /proc or /sys path.
pub fn stat(p: &str, follow_last: bool) -> Result<KernelStat, Errno> {
    let p = follow(p, follow_last)?;
    if !owns(&p) {
        return super::policy::stat("/", p.as_bytes(), follow_last);
    }
    match lookup(&p)? {
        Node::Dir(_) => GenDir {
            entries: Vec::new(),
            ino: ino_of(&p),
        }
        .stat(),
        Node::File(d) => {
            let mut st = GenFile {
                data: Vec::new(),
                ino: ino_of(&p),
            }
            .stat()?;
            // Linux reports size 0 for most of /proc; sysfs files a page.
            st.st_size = if p.starts_with("/sys") { 4096 } else { 0 };
            let _ = d;
            Ok(st)
        }
        Node::Link(t) => Ok(KernelStat {
            st_dev: 4,
            st_ino: ino_of(&p),
            st_nlink: 1,
            st_mode: mode::S_IFLNK | 0o777,
            st_size: t.len() as i64,
            ..Default::default()
        }),
        Node::Fd(of) => of.file.stat(),
    }
}

/// readlink(2) of a /proc path.
pub fn readlink(p: &str) -> Result<String, Errno> {
    match lookup(p)? {
        Node::Link(t) => Ok(t),
        Node::Fd(of) => Ok(of.path.clone()),
        _ => Err(Errno::EINVAL),
    }
}
