//! The system call table: every number the LibOS knows, with its handler
//! or the reason it is refused. `docs/syscalls.md` is generated from it
//! (see the test at the bottom).

use conf_abi::Errno;

use super::names::COUNT;
use super::{clone, exec, file, fs, misc, mmap, net, poll, process as proc, signal, time, Handler};

#[derive(Clone, Copy)]
pub enum Entry {
    Supported(Handler),
    /// Works for what programs use; the note says what does not.
    Partial(Handler, &'static str),
    /// Refused with this errno, for this reason.
    Unsupported(Errno, &'static str),
    /// Not implemented: ENOSYS, logged once.
    Missing,
}

use Entry::{Partial as P, Supported as S, Unsupported as U};

macro_rules! table {
    ($($nr:literal => $e:expr,)*) => {{
        let mut t = [Entry::Missing; COUNT];
        $( t[$nr] = $e; )*
        t
    }};
}

pub static TABLE: [Entry; COUNT] = table! {
    0 => S(file::sys_read),
    1 => S(file::sys_write),
    2 => S(fs::sys_open),
    3 => S(file::sys_close),
    4 => S(fs::sys_stat),
    5 => S(file::sys_fstat),
    6 => S(fs::sys_lstat),
    7 => S(poll::sys_poll),
    8 => S(file::sys_lseek),
    9 => P(mmap::sys_mmap, "MAP_SHARED of an allowed host file, and anonymous MAP_SHARED (not MAP_FIXED), are host memory shared with the file and with forked processes (unprotected); trusted files map as verified private copies, so writes through their MAP_SHARED mappings do not reach the file"),
    10 => S(mmap::sys_mprotect),
    11 => S(mmap::sys_munmap),
    12 => S(mmap::sys_brk),
    13 => S(signal::sys_rt_sigaction),
    14 => S(signal::sys_rt_sigprocmask),
    15 => S(signal::sys_rt_sigreturn),
    16 => P(file::sys_ioctl, "terminal requests on host streams, FIONBIO, FIOCLEX/FIONCLEX"),
    17 => S(file::sys_pread64),
    18 => S(file::sys_pwrite64),
    19 => S(file::sys_readv),
    20 => S(file::sys_writev),
    21 => S(fs::sys_access),
    22 => P(file::sys_pipe, "pipes go through the host, unprotected"),
    23 => S(poll::sys_select),
    24 => S(proc::sys_sched_yield),
    25 => S(mmap::sys_mremap),
    26 => P(mmap::sys_msync, "file mappings are private copies"),
    27 => S(mmap::sys_mincore),
    28 => P(mmap::sys_madvise, "DONTNEED/REMOVE zero the range; other advice is accepted and ignored"),
    32 => S(file::sys_dup),
    33 => S(file::sys_dup2),
    34 => S(signal::sys_pause),
    35 => S(time::sys_nanosleep),
    36 => S(time::sys_getitimer),
    37 => S(time::sys_alarm),
    38 => P(time::sys_setitimer, "ITIMER_VIRTUAL and ITIMER_PROF count wall-clock time"),
    39 => S(proc::sys_getpid),
    40 => S(file::sys_sendfile),
    41 => P(net::sys_socket, "AF_INET, AF_INET6, AF_UNIX; traffic goes through the host unprotected; AF_UNIX paths in tmpfs are host sockets in the run's private directory"),
    42 => S(net::sys_connect),
    43 => S(net::sys_accept),
    44 => S(net::sys_sendto),
    45 => S(net::sys_recvfrom),
    46 => P(net::sys_sendmsg, "SCM_RIGHTS passes pipes, sockets, eventfd, timerfd and allowed files, not in-enclave files (tmpfs, trusted files, epoll): EOPNOTSUPP"),
    47 => P(net::sys_recvmsg, "SCM_RIGHTS installs the descriptors as the kind of file they are; MSG_CTRUNC, MSG_CMSG_CLOEXEC as Linux"),
    48 => S(net::sys_shutdown),
    49 => S(net::sys_bind),
    50 => S(net::sys_listen),
    51 => S(net::sys_getsockname),
    52 => S(net::sys_getpeername),
    53 => P(net::sys_socketpair, "AF_UNIX only"),
    54 => S(net::sys_setsockopt),
    55 => S(net::sys_getsockopt),
    56 => P(clone::sys_clone, "threads; vfork-style (CLONE_VM|CLONE_VFORK) and fork-style (no CLONE_VM) processes; no other sharing combinations"),
    57 => P(clone::sys_fork, "a child enclave process with a copy of the memory and files; tmpfs is copied, not shared"),
    58 => P(clone::sys_vfork, "the child runs on the parent's thread until execve or _exit"),
    59 => S(exec::sys_execve),
    60 => S(proc::sys_exit),
    61 => S(proc::sys_wait4),
    62 => P(signal::sys_kill, "this process, its children, its parent, its group, other processes of the program by pid"),
    63 => S(proc::sys_uname),
    72 => P(file::sys_fcntl, "locks are the host's, on host files"),
    73 => S(file::sys_flock),
    74 => S(file::sys_fsync),
    75 => S(file::sys_fdatasync),
    76 => S(fs::sys_truncate),
    77 => S(file::sys_ftruncate),
    78 => U(Errno::ENOSYS, "getdents is obsolete; glibc uses getdents64"),
    79 => S(fs::sys_getcwd),
    80 => S(fs::sys_chdir),
    81 => S(fs::sys_fchdir),
    82 => S(fs::sys_rename),
    83 => S(fs::sys_mkdir),
    84 => S(fs::sys_rmdir),
    85 => S(fs::sys_creat),
    86 => S(fs::sys_link),
    87 => S(fs::sys_unlink),
    88 => S(fs::sys_symlink),
    89 => S(fs::sys_readlink),
    90 => S(fs::sys_chmod),
    91 => S(fs::sys_fchmod),
    92 => P(fs::sys_chown, "ownership is not changed"),
    93 => P(fs::sys_chown, "ownership is not changed"),
    94 => P(fs::sys_chown, "ownership is not changed"),
    95 => S(fs::sys_umask),
    96 => S(time::sys_gettimeofday),
    97 => S(proc::sys_getrlimit),
    98 => P(proc::sys_getrusage, "only the maximum resident size is reported"),
    99 => S(proc::sys_sysinfo),
    102 => S(proc::sys_getid),
    104 => S(proc::sys_getid),
    105 => P(proc::sys_setid, "only to the current identity"),
    106 => P(proc::sys_setid, "only to the current identity"),
    107 => S(proc::sys_getid),
    108 => S(proc::sys_getid),
    109 => S(proc::sys_setpgid),
    110 => S(proc::sys_getppid),
    111 => S(proc::sys_getpgid),
    112 => S(proc::sys_setsid),
    113 => P(proc::sys_setid, "only to the current identity"),
    114 => P(proc::sys_setid, "only to the current identity"),
    115 => S(proc::sys_getgroups),
    116 => P(proc::sys_setid, "only to the current identity"),
    117 => P(proc::sys_setid, "only to the current identity"),
    118 => S(proc::sys_getresid),
    119 => P(proc::sys_setid, "only to the current identity"),
    120 => S(proc::sys_getresid),
    121 => S(proc::sys_getpgid),
    122 => P(proc::sys_setid, "only to the current identity"),
    123 => P(proc::sys_setid, "only to the current identity"),
    124 => S(proc::sys_getsid),
    127 => S(signal::sys_rt_sigpending),
    128 => S(signal::sys_rt_sigtimedwait),
    129 => P(signal::sys_rt_sigqueueinfo, "only to this process"),
    130 => S(signal::sys_rt_sigsuspend),
    131 => S(signal::sys_sigaltstack),
    132 => U(Errno::EPERM, "utime is obsolete; use utimensat"),
    135 => S(proc::sys_personality),
    137 => S(fs::sys_statfs),
    138 => S(fs::sys_fstatfs),
    140 => P(proc::sys_getid, "priority is always 0"),
    141 => P(proc::sys_setpriority, "priority is not changed"),
    149 => S(mmap::sys_mlock),
    150 => S(mmap::sys_mlock),
    151 => S(mmap::sys_mlock),
    152 => S(mmap::sys_mlock),
    157 => P(proc::sys_prctl, "names, death signal, dumpable, no_new_privs"),
    158 => S(proc::sys_arch_prctl),
    160 => S(proc::sys_setrlimit),
    161 => U(Errno::EPERM, "chroot needs privileges the enclave does not have"),
    165 => U(Errno::EPERM, "mounting is done by the manifest (fs.mounts)"),
    186 => S(proc::sys_gettid),
    188 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    189 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    190 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    191 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    192 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    193 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    194 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    195 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    196 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    197 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    198 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    199 => U(Errno::EOPNOTSUPP, "no extended attributes"),
    200 => P(signal::sys_tkill, "only to this process"),
    201 => S(time::sys_time),
    202 => S(misc::sys_futex),
    203 => P(proc::sys_sched_setaffinity, "accepted without effect"),
    204 => S(proc::sys_sched_getaffinity),
    213 => S(poll::sys_epoll_create),
    217 => S(file::sys_getdents64),
    218 => S(proc::sys_set_tid_address),
    222 => S(time::sys_timer_create),
    223 => S(time::sys_timer_settime),
    224 => S(time::sys_timer_gettime),
    225 => S(time::sys_timer_getoverrun),
    226 => S(time::sys_timer_delete),
    228 => S(time::sys_clock_gettime),
    229 => S(time::sys_clock_getres),
    230 => S(time::sys_clock_nanosleep),
    231 => S(proc::sys_exit_group),
    232 => S(poll::sys_epoll_wait),
    233 => S(poll::sys_epoll_ctl),
    234 => P(signal::sys_tgkill, "only to this process"),
    235 => U(Errno::EPERM, "utimes is obsolete; use utimensat"),
    257 => S(fs::sys_openat),
    258 => S(fs::sys_mkdirat),
    260 => P(fs::sys_chown, "ownership is not changed"),
    262 => S(fs::sys_newfstatat),
    263 => S(fs::sys_unlinkat),
    264 => S(fs::sys_renameat),
    265 => S(fs::sys_linkat),
    266 => S(fs::sys_symlinkat),
    267 => S(fs::sys_readlinkat),
    268 => S(fs::sys_fchmodat),
    269 => S(fs::sys_faccessat),
    270 => S(poll::sys_pselect6),
    271 => S(poll::sys_ppoll),
    247 => P(proc::sys_waitid, "P_ALL and P_PID"),
    273 => S(proc::sys_set_robust_list),
    274 => S(proc::sys_get_robust_list),
    280 => S(fs::sys_utimensat),
    281 => S(poll::sys_epoll_pwait),
    283 => P(poll::sys_timerfd_create, "a host timerfd: its timing is the host's"),
    284 => P(poll::sys_eventfd, "a host eventfd"),
    286 => S(poll::sys_timerfd_settime),
    287 => S(poll::sys_timerfd_gettime),
    288 => S(net::sys_accept4),
    290 => P(poll::sys_eventfd2, "a host eventfd"),
    291 => S(poll::sys_epoll_create1),
    292 => S(file::sys_dup3),
    293 => P(file::sys_pipe2, "pipes go through the host, unprotected"),
    295 => S(file::sys_preadv),
    296 => S(file::sys_pwritev),
    302 => S(proc::sys_prlimit64),
    307 => P(net::sys_sendmmsg, "as sendmsg"),
    309 => S(proc::sys_getcpu),
    316 => P(fs::sys_renameat2, "no RENAME_* flags"),
    318 => S(misc::sys_getrandom),
    326 => U(Errno::EXDEV, "copy_file_range: callers fall back to read/write"),
    322 => S(exec::sys_execveat),
    332 => S(fs::sys_statx),
    334 => U(Errno::ENOSYS, "restartable sequences are not provided; glibc falls back"),
    435 => P(clone::sys_clone3, "as clone"),
    436 => S(file::sys_close_range),
    439 => S(fs::sys_faccessat2),
    441 => S(poll::sys_epoll_pwait2),
    452 => S(fs::sys_fchmodat),
};

/// The table as the Markdown of `docs/syscalls.md`.
pub fn render_markdown() -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::from(
        "# System calls\n\nGenerated from `libos/src/syscall/table.rs` (`cargo test -p conf-libos syscall_doc -- --ignored` rewrites it).\n\
         Numbers not listed return ENOSYS and are logged once by name.\n\n| nr | name | status | note |\n|---:|---|---|---|\n",
    );
    for (nr, e) in TABLE.iter().enumerate() {
        let name = super::names::NAMES[nr];
        match e {
            Entry::Supported(_) => {
                let _ = writeln!(s, "| {nr} | {name} | supported | |");
            }
            Entry::Partial(_, note) => {
                let _ = writeln!(s, "| {nr} | {name} | partial | {note} |");
            }
            Entry::Unsupported(errno, why) => {
                let _ = writeln!(s, "| {nr} | {name} | refused ({}) | {why} |", errno.name());
            }
            Entry::Missing => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/syscalls.md")
    }

    #[test]
    fn docs_match_the_table() {
        let want = render_markdown();
        let have = std::fs::read_to_string(doc_path()).unwrap_or_default();
        assert!(have == want, "docs/syscalls.md is out of date; run `cargo test -p conf-libos syscall_doc -- --ignored`");
    }

    #[test]
    #[ignore]
    fn syscall_doc() {
        std::fs::write(doc_path(), render_markdown()).unwrap();
    }

    #[test]
    fn every_entry_has_a_name() {
        for (nr, e) in TABLE.iter().enumerate() {
            if !matches!(e, Entry::Missing) {
                assert!(
                    !super::super::names::NAMES[nr].is_empty(),
                    "syscall {nr} has no name"
                );
            }
        }
    }
}
