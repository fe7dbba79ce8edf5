//! Building test images in code: tar layers (including malformed and
//! malicious ones), compressed or not, written as a Docker archive, an OCI
//! layout or an OCI archive. Shared by loader/tests/oci*.rs and
//! tools/tests/wrap*.rs.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn digest(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// One tar entry.
#[derive(Clone, Debug)]
pub enum E {
    File(String, Vec<u8>, u32),
    Dir(String, u32),
    Symlink(String, String),
    Hardlink(String, String),
    CharDev(String),
    Fifo(String),
}

pub fn file(name: &str, data: &[u8]) -> E {
    E::File(name.into(), data.to_vec(), 0o644)
}
pub fn exe(name: &str, data: &[u8]) -> E {
    E::File(name.into(), data.to_vec(), 0o755)
}
pub fn dir(name: &str) -> E {
    E::Dir(name.into(), 0o755)
}
pub fn symlink(name: &str, target: &str) -> E {
    E::Symlink(name.into(), target.into())
}
pub fn hardlink(name: &str, target: &str) -> E {
    E::Hardlink(name.into(), target.into())
}

/// A ustar header with any name (`..`, absolute: the tar crate's own
/// setters refuse those, a malicious layer does not).
fn header(name: &str, link: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_entry_type(kind);
    h.set_mtime(1_000_000_000);
    let u = h.as_ustar_mut().unwrap();
    assert!(
        name.len() <= 100 && link.len() <= 100,
        "test names fit the ustar fields"
    );
    u.name = [0; 100];
    u.name[..name.len()].copy_from_slice(name.as_bytes());
    u.linkname = [0; 100];
    u.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    h
}

/// An uncompressed tar layer.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match e {
            E::File(n, d, m) => (
                header(n, "", tar::EntryType::Regular, d.len() as u64, *m),
                d,
            ),
            E::Dir(n, m) => (header(n, "", tar::EntryType::Directory, 0, *m), &[]),
            E::Symlink(n, t) => (header(n, t, tar::EntryType::Symlink, 0, 0o777), &[]),
            E::Hardlink(n, t) => (header(n, t, tar::EntryType::Link, 0, 0o644), &[]),
            E::CharDev(n) => (header(n, "", tar::EntryType::Char, 0, 0o666), &[]),
            E::Fifo(n) => (header(n, "", tar::EntryType::Fifo, 0, 0o644), &[]),
        };
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 1).unwrap()
}

/// A test image: layer blobs (as stored) with their uncompressed tars.
pub struct TestImage {
    /// (blob as stored, uncompressed tar)
    pub layers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The config's `config` object.
    pub run: Value,
}

impl TestImage {
    pub fn new(run: Value) -> TestImage {
        TestImage {
            layers: Vec::new(),
            run,
        }
    }
    pub fn plain(mut self, entries: &[E]) -> Self {
        let t = layer(entries);
        self.layers.push((t.clone(), t));
        self
    }
    pub fn gz(mut self, entries: &[E]) -> Self {
        let t = layer(entries);
        self.layers.push((gzip(&t), t));
        self
    }
    pub fn zst(mut self, entries: &[E]) -> Self {
        let t = layer(entries);
        self.layers.push((zstd(&t), t));
        self
    }
    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|(_, t)| digest(t)).collect();
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": self.run,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": self.layers.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }
}

/// A tar archive of (name, bytes) files.
pub fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, n, d.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// The files of a Docker archive (newer Docker's layout: blobs by digest).
pub fn docker_files(img: &TestImage, tag: &str) -> Vec<(String, Vec<u8>)> {
    let config = img.config();
    let cname = format!("blobs/sha256/{}", &digest(&config)[7..]);
    let mut files = vec![(cname.clone(), config)];
    let mut names = Vec::new();
    for (blob, _) in &img.layers {
        let n = format!("blobs/sha256/{}", &digest(blob)[7..]);
        files.push((n.clone(), blob.clone()));
        names.push(n);
    }
    let manifest = json!([{ "Config": cname, "RepoTags": [tag], "Layers": names }]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    files
}

pub fn write_docker_archive(path: &Path, img: &TestImage, tag: &str) {
    std::fs::write(path, archive(&docker_files(img, tag))).unwrap();
}

/// The files of an OCI layout.
pub fn oci_files(img: &TestImage, name: &str) -> Vec<(String, Vec<u8>)> {
    let config = img.config();
    let mut files = vec![(
        format!("blobs/sha256/{}", &digest(&config)[7..]),
        config.clone(),
    )];
    let mut layers = Vec::new();
    for (blob, tar) in &img.layers {
        let mt = if blob == tar {
            "application/vnd.oci.image.layer.v1.tar"
        } else if blob.starts_with(&[0x1f, 0x8b]) {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        };
        files.push((format!("blobs/sha256/{}", &digest(blob)[7..]), blob.clone()));
        layers.push(json!({ "mediaType": mt, "digest": digest(blob), "size": blob.len() }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len() },
        "layers": layers,
    }))
    .unwrap();
    files.push((
        format!("blobs/sha256/{}", &digest(&manifest)[7..]),
        manifest.clone(),
    ));
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(),
                        "annotations": { "org.opencontainers.image.ref.name": name } }],
    });
    files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files
}

pub fn write_oci_dir(dir: &Path, img: &TestImage, name: &str) {
    for (n, d) in oci_files(img, name) {
        let p = dir.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
}

pub fn write_oci_archive(path: &Path, img: &TestImage, name: &str) {
    std::fs::write(path, archive(&oci_files(img, name))).unwrap();
}

/// A static x86-64 program printing its arguments and a file's contents,
/// compiled with the host's C compiler; `None` if it cannot be built.
pub fn static_hello(dir: &Path) -> Option<Vec<u8>> {
    let src = dir.join("hello.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from the image:");
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    FILE *f = fopen("data/greeting.txt", "r");
    char line[256];
    if (f && fgets(line, sizeof line, f)) printf("greeting: %s", line);
    return 0;
}
"#,
    )
    .unwrap();
    let out = dir.join("hello");
    let ok = std::process::Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| std::fs::read(&out).unwrap())
}

/// A small runnable image: a static program in layer 1, data in layer 2
/// (gzip), a whiteout in layer 3 (zstd).
pub fn hello_image(hello: &[u8]) -> TestImage {
    TestImage::new(json!({
        "Entrypoint": ["/usr/bin/hello"],
        "Cmd": ["one", "two"],
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hi"],
        "WorkingDir": "/srv",
    }))
    .plain(&[
        dir("usr/"),
        dir("usr/bin/"),
        exe("usr/bin/hello", hello),
        dir("etc/"),
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        symlink("bin", "usr/bin"),
    ])
    .gz(&[
        dir("srv/"),
        dir("srv/data/"),
        file("srv/data/greeting.txt", b"hello, enclave\n"),
        file("srv/data/old.txt", b"old\n"),
        dir("var/"),
        dir("var/cache/"),
        file("var/cache/junk", b"junk"),
    ])
    .zst(&[
        file("srv/data/.wh.old.txt", b""),
        file("srv/README", b"read me\n"),
    ])
}
