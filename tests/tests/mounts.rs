//! fs.mounts: a host directory shown elsewhere (chroot) and a file system
//! in enclave memory (tmpfs).

use conf_e2e::{assert_exit, Manifest, Sandbox};

/// A trusted host directory mounted at /app: the program reads it by its
/// enclave path.
#[test]
fn chroot_mount_shows_a_host_directory() {
    let sb = Sandbox::new();
    let file = sb.write("appdir/hello.txt", "hello from /app\n");
    let mut m = Manifest::for_program("/bin/cat");
    m.trust(&file);
    m.mount(&format!(
        "{{ path = \"/app\", uri = \"file:{}\" }}",
        sb.path("appdir").display()
    ));
    let mpath = sb.manifest("m", &m);
    let out = sb.conf_run(&mpath, &[], &["cat", "/app/hello.txt"]);
    assert_exit(&out, 0, "cat /app/hello.txt");
    assert_eq!(out.stdout_str(), "hello from /app\n", "{}", out.describe());
}

/// A tmpfs at /tmp: files written there are readable in the enclave and
/// never reach the host's /tmp.
#[test]
fn tmpfs_lives_in_the_enclave() {
    if !std::path::Path::new("/usr/bin/python3.11").exists() {
        eprintln!("skipped: no /usr/bin/python3.11");
        return;
    }
    let sb = Sandbox::new();
    let mut m = Manifest::for_program("/usr/bin/python3.11");
    m.entrypoint = "/usr/bin/python3".into();
    m.trust("/usr/bin/python3").trust("/usr/lib/python3.11/");
    m.mount("{ type = \"tmpfs\", path = \"/tmp\" }");
    let mpath = sb.manifest("m", &m);
    let name = format!("conf-e2e-tmpfs-{}", std::process::id());
    let script = format!(
        r#"
import os
p = "/tmp/{name}"
os.mkdir(p)
with open(p + "/f", "wb") as f:
    f.write(b"x" * 100000)
os.symlink("f", p + "/l")
print(sorted(os.listdir(p)), os.path.getsize(p + "/l"), os.readlink(p + "/l"))
os.rename(p + "/f", p + "/g")
with open(p + "/g", "rb") as f:
    print(len(f.read()))
print(sorted(os.listdir(p)))
"#
    );
    let out = sb.conf_run(&mpath, &[], &["python3", "-S", "-c", &script]);
    assert_exit(&out, 0, "python on a tmpfs /tmp");
    assert_eq!(
        out.stdout_str(),
        "['f', 'l'] 100000 f\n100000\n['g', 'l']\n",
        "{}",
        out.describe()
    );
    assert!(
        !std::path::Path::new("/tmp").join(&name).exists(),
        "the tmpfs directory appeared on the host"
    );
}
