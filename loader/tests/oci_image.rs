//! Reading images in each transport, every blob checked; the errors for a
//! tampered layer, a missing or malformed config and a truncated archive;
//! writing an image with one more layer and reading it back.

// loader/clippy.toml's disallowed methods are for synthesis's own code.
#![allow(clippy::disallowed_methods)]

mod oci_common;

use std::path::Path;

use conf_loader::oci::source::Image;
use conf_loader::oci::write::{write_image, Output};
use conf_loader::oci::{wrapped, ImageRef, Transport};
use oci_common::*;
use serde_json::json;

fn sample() -> TestImage {
    TestImage::new(json!({ "Entrypoint": ["/bin/app"], "Env": ["A=1"] }))
        .plain(&[
            dir("bin/"),
            exe("bin/app", b"#!/bin/sh\necho hi\n"),
            file("etc/old", b"old"),
        ])
        .gz(&[
            dir("etc/"),
            file("etc/.wh.old", b""),
            file("etc/conf", b"gz layer"),
        ])
        .zst(&[file("etc/zst", b"zstd layer")])
}

fn open(spec: &str) -> anyhow::Result<Image> {
    Image::open(&ImageRef::parse(spec, None).map_err(|e| anyhow::anyhow!(e))?)
}

fn err(spec: &str) -> String {
    match open(spec) {
        Ok(_) => panic!("{spec} opened"),
        Err(e) => format!("{e:#}"),
    }
}

fn unpack_all(img: &Image, dest: &Path) -> anyhow::Result<()> {
    wrapped::unpack_layers(
        img,
        img.layers.len(),
        dest,
        &indicatif::ProgressBar::hidden(),
    )
    .map(|_| ())
}

fn check_tree(root: &Path) {
    assert_eq!(std::fs::read(root.join("etc/conf")).unwrap(), b"gz layer");
    assert_eq!(std::fs::read(root.join("etc/zst")).unwrap(), b"zstd layer");
    assert!(!root.join("etc/old").exists());
    assert!(root.join("bin/app").is_file());
}

#[test]
fn every_transport_reads_and_unpacks() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    write_docker_archive(&t.path().join("d.tar"), &img, "example/app:1");
    write_oci_dir(&t.path().join("oci"), &img, "v1");
    write_oci_archive(&t.path().join("o.tar"), &img, "v1");
    let specs = [
        format!("docker-archive:{}", t.path().join("d.tar").display()),
        format!(
            "docker-archive:{}:example/app:1",
            t.path().join("d.tar").display()
        ),
        format!("oci:{}:v1", t.path().join("oci").display()),
        format!("oci:{}", t.path().join("oci").display()),
        format!("oci-archive:{}", t.path().join("o.tar").display()),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let img = open(spec).unwrap_or_else(|e| panic!("{spec}: {e:#}"));
        assert_eq!(img.layers.len(), 3);
        assert_eq!(img.run_config().unwrap()["Entrypoint"], json!(["/bin/app"]));
        let dest = t.path().join(format!("root{i}"));
        std::fs::create_dir(&dest).unwrap();
        unpack_all(&img, &dest).unwrap_or_else(|e| panic!("{spec}: {e:#}"));
        check_tree(&dest);
    }
    assert!(
        err(&format!("oci:{}:v2", t.path().join("oci").display())).contains("no image named v2")
    );
    assert!(err(&format!(
        "docker-archive:{}:other:tag",
        t.path().join("d.tar").display()
    ))
    .contains("no image tagged other:tag"));
}

#[test]
fn a_tampered_layer_is_named() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    // OCI: the blob no longer matches its digest.
    let dir = t.path().join("oci");
    write_oci_dir(&dir, &img, "v1");
    let blob = dir.join(format!("blobs/sha256/{}", &digest(&img.layers[0].0)[7..]));
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.windows(2).position(|w| w == b"hi").unwrap();
    bytes[at] = b'H';
    std::fs::write(&blob, &bytes).unwrap();
    let opened = open(&format!("oci:{}", dir.display())).unwrap();
    let dest = t.path().join("root");
    std::fs::create_dir(&dest).unwrap();
    let e = format!("{:#}", unpack_all(&opened, &dest).unwrap_err());
    assert!(e.contains("layer 1 of 3"), "{e}");
    assert!(e.contains(&blob.display().to_string()), "{e}");
    assert!(e.contains("was modified or is corrupt"), "{e}");

    // Docker archive: the layer's contents no longer match rootfs.diff_ids.
    let mut files = docker_files(&img, "a:b");
    let (_, data) = files
        .iter_mut()
        .find(|(n, _)| n.ends_with(&digest(&img.layers[2].0)[7..]))
        .unwrap();
    let mut plain = zstd::decode_all(data.as_slice()).unwrap();
    let at = plain.windows(4).position(|w| w == b"zstd").unwrap();
    plain[at] = b'Z';
    *data = oci_common::zstd(&plain);
    std::fs::write(t.path().join("d.tar"), archive(&files)).unwrap();
    let opened = open(&format!(
        "docker-archive:{}",
        t.path().join("d.tar").display()
    ))
    .unwrap();
    let dest = t.path().join("root2");
    std::fs::create_dir(&dest).unwrap();
    let e = format!("{:#}", unpack_all(&opened, &dest).unwrap_err());
    assert!(e.contains("layer 3 of 3"), "{e}");
    assert!(e.contains("modified or is corrupt"), "{e}");
}

#[test]
fn missing_or_malformed_configs() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    let path = t.path().join("d.tar");
    let spec = format!("docker-archive:{}", path.display());
    // Missing.
    let files: Vec<_> = docker_files(&img, "a:b")
        .into_iter()
        .filter(|(n, _)| n == "manifest.json" || !n.ends_with(&digest(&img.config())[7..]))
        .collect();
    std::fs::write(&path, archive(&files)).unwrap();
    let e = err(&spec);
    assert!(e.contains("the image config is missing"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    // Not JSON (and not matching its digest-derived name).
    let mut files = docker_files(&img, "a:b");
    for (n, d) in &mut files {
        if n.ends_with(&digest(&img.config())[7..]) {
            *n = "config.json".into();
            *d = b"{not json".to_vec();
        }
        if n == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(d).unwrap();
            m[0]["Config"] = json!("config.json");
            *d = serde_json::to_vec(&m).unwrap();
        }
    }
    std::fs::write(&path, archive(&files)).unwrap();
    let e = err(&spec);
    assert!(
        e.contains("the image config (config.json in") && e.contains("is not valid JSON"),
        "{e}"
    );
    // JSON, but no rootfs.
    for (n, d) in &mut files {
        if n == "config.json" {
            *d = br#"{"config":{}}"#.to_vec();
        }
    }
    std::fs::write(&path, archive(&files)).unwrap();
    assert!(err(&spec).contains("has no rootfs.diff_ids"));
    // OCI: a config that does not match its digest.
    let dir = t.path().join("oci");
    write_oci_dir(&dir, &img, "v1");
    let cfg = dir.join(format!("blobs/sha256/{}", &digest(&img.config())[7..]));
    std::fs::write(&cfg, b"{}").unwrap();
    let e = err(&format!("oci:{}", dir.display()));
    assert!(
        e.contains("the image config") && e.contains("modified or is corrupt"),
        "{e}"
    );
    // OCI: no config blob at all.
    std::fs::remove_file(&cfg).unwrap();
    let e = err(&format!("oci:{}", dir.display()));
    assert!(e.contains("the image config is missing"), "{e}");
    // Not an image at all.
    std::fs::write(&path, b"hello").unwrap();
    let e = err(&spec);
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(err(&format!("oci:{}", t.path().join("nope").display())).contains("does not exist"));
}

#[test]
fn truncated_archives_are_named() {
    let t = tempfile::tempdir().unwrap();
    let img = TestImage::new(json!({ "Cmd": ["/x"] })).plain(&[file("big", &vec![3u8; 200_000])]);
    let path = t.path().join("d.tar");
    write_docker_archive(&path, &img, "a:b");
    let full = std::fs::read(&path).unwrap();
    // Cut inside the layer (the largest entry).
    std::fs::write(&path, &full[..full.len() - 120_000]).unwrap();
    let e = err(&format!("docker-archive:{}", path.display()));
    assert!(e.contains("truncated"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
}

#[test]
fn written_images_read_back() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    let src_path = t.path().join("src.tar");
    write_oci_archive(&src_path, &img, "v1");
    let src = open(&format!("oci-archive:{}", src_path.display())).unwrap();
    let layer =
        wrapped::conf_layer(b"conf-run bytes", b"manifest bytes", &[0u8; 1808], 86400).unwrap();
    let mut config = src.config.clone();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(layer.diff_id()));
    for (i, (transport, name)) in [
        (Transport::DockerArchive, "out.tar"),
        (Transport::Oci, "out-oci"),
        (Transport::OciArchive, "out-oci.tar"),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = ImageRef {
            transport,
            path: t.path().join(name),
            reference: None,
        };
        let out = Output {
            dest: &dest,
            source: &src,
            config: &config,
            layer: &layer,
            name: "test:conf",
            mtime: 86400,
        };
        write_image(&out, &indicatif::ProgressBar::hidden()).unwrap();
        let first = if transport == Transport::Oci {
            None
        } else {
            Some(std::fs::read(&dest.path).unwrap())
        };
        // Deterministic: the same again gives the same bytes.
        write_image(&out, &indicatif::ProgressBar::hidden()).unwrap();
        if let Some(first) = first {
            assert_eq!(
                std::fs::read(&dest.path).unwrap(),
                first,
                "{transport:?} output is not reproducible"
            );
        }
        let back = Image::open(&dest).unwrap_or_else(|e| panic!("{transport:?}: {e:#}"));
        assert_eq!(back.layers.len(), 4);
        let conf = wrapped::read_conf_layer(&back);
        // The SIGSTRUCT here is zeros: not a valid one.
        assert!(conf.is_err());
        let root = t.path().join(format!("root{i}"));
        std::fs::create_dir(&root).unwrap();
        unpack_all(&back, &root).unwrap();
        check_tree(&root);
        assert_eq!(
            std::fs::read(root.join("conf/app.manifest")).unwrap(),
            b"manifest bytes"
        );
        assert_eq!(
            std::fs::read(root.join("usr/local/bin/conf-run")).unwrap(),
            b"conf-run bytes"
        );
    }
    // Writing into an OCI layout keeps its other images.
    let dir = t.path().join("shared");
    write_oci_dir(&dir, &img, "v1");
    let src = open(&format!("oci:{}:v1", dir.display())).unwrap();
    let dest = ImageRef {
        transport: Transport::Oci,
        path: dir.clone(),
        reference: None,
    };
    write_image(
        &Output {
            dest: &dest,
            source: &src,
            config: &config,
            layer: &layer,
            name: "v1-conf",
            mtime: 0,
        },
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    assert!(open(&format!("oci:{}:v1", dir.display())).is_ok());
    assert_eq!(
        open(&format!("oci:{}:v1-conf", dir.display()))
            .unwrap()
            .layers
            .len(),
        4
    );
}

#[test]
fn the_unpack_cache_is_keyed_by_layers() {
    let t = tempfile::tempdir().unwrap();
    let img = sample();
    write_oci_dir(&t.path().join("oci"), &img, "v1");
    let opened = open(&format!("oci:{}", t.path().join("oci").display())).unwrap();
    let cache = t.path().join("cache");
    let a = wrapped::cached_rootfs(&opened, 3, &cache).unwrap();
    check_tree(&a);
    let b = wrapped::cached_rootfs(&opened, 3, &cache).unwrap();
    assert_eq!(a, b);
    let c = wrapped::cached_rootfs(&opened, 1, &cache).unwrap();
    assert_ne!(a, c);
    assert!(c.join("etc/old").exists());
    // No scratch directories are left behind.
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn docker_save_links_to_repeated_layers() {
    // Older `docker save`: ID/layer.tar files, a repeated layer stored as a
    // symbolic link to the first copy.
    let t = tempfile::tempdir().unwrap();
    let l = layer(&[file("a", b"a")]);
    let img = TestImage {
        layers: vec![(l.clone(), l.clone()), (l.clone(), l.clone())],
        run: json!({ "Cmd": ["/a"] }),
    };
    let config = img.config();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("cfg.json", &config);
    add("one/layer.tar", &l);
    add(
        "manifest.json",
        br#"[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["one/layer.tar","two/layer.tar"]}]"#,
    );
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "two/layer.tar", "../one/layer.tar")
        .unwrap();
    std::fs::write(t.path().join("d.tar"), b.into_inner().unwrap()).unwrap();
    let img = open(&format!(
        "docker-archive:{}",
        t.path().join("d.tar").display()
    ))
    .unwrap();
    assert_eq!(img.layers.len(), 2);
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    unpack_all(&img, &root).unwrap();
    assert_eq!(std::fs::read(root.join("a")).unwrap(), b"a");
}
