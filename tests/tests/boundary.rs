//! The boundary rule: the LibOS makes no system call of its own. A LibOS
//! built to break it (feature `selftest-raw-syscall`: a raw `syscall` at
//! boot) must be caught and reported by the sim backend.

use conf_e2e::{assert_exit, bins::libos_variant, Manifest, Sandbox, EXIT_SETUP};

#[test]
fn raw_syscall_in_the_libos_is_caught() {
    let sb = Sandbox::new();
    let f = sb.write("data/f.txt", "hello\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.allow(sb.data());
    let mpath = sb.manifest("m", &m);
    let argv = ["cat", f.to_str().unwrap()];

    // The same run with the built-in LibOS works.
    let out = sb.conf_run(&mpath, &[], &argv);
    assert_exit(&out, 0, "cat with the built-in LibOS");

    let elf = libos_variant("selftest", "selftest-raw-syscall");
    let out = sb.conf_run(&mpath, &["--insecure-libos", elf.to_str().unwrap()], &argv);
    assert_exit(
        &out,
        EXIT_SETUP,
        "cat with a LibOS that makes a raw system call",
    );
    let err = out.stderr_str();
    assert!(
        err.contains("boundary violation") && err.contains("raw system call"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.is_empty(),
        "the program ran:\n{}",
        out.describe()
    );
}

#[test]
fn libos_that_is_not_an_elf_is_refused() {
    let sb = Sandbox::new();
    let m = Manifest::for_program("/bin/true");
    let mpath = sb.manifest("m", &m);
    let junk = sb.write("junk.elf", b"this is not an ELF file");
    let out = sb.conf_run(
        &mpath,
        &["--insecure-libos", junk.to_str().unwrap()],
        &["true"],
    );
    assert_exit(&out, EXIT_SETUP, "a LibOS that is not an ELF");
    assert!(
        out.stderr_str().contains("[conf] error"),
        "{}",
        out.describe()
    );
}
