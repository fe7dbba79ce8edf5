//! The subcommands, and what they share: `-D` template variables, dates,
//! building a manifest's image, and writing output files safely.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use conf_loader::image::{build_image, BuiltImage};
use conf_loader::sgx::SigDate;

pub mod inspect;
pub mod keygen;
pub mod manifest;
pub mod measure;
pub mod sign;
pub mod verify;
pub mod wrap;

/// `-D NAME=VALUE`, as clap parses it.
pub fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!(
            "expected NAME=VALUE (e.g. -D python=/usr/bin/python3), got {s:?}"
        )),
    }
}

/// `--date YYYYMMDD`, as clap parses it.
pub fn parse_date(s: &str) -> Result<SigDate, String> {
    SigDate::parse(s).map_err(|e| e.to_string())
}

/// The template variables of repeated `-D`s; a later one overrides an
/// earlier one with the same name.
pub fn defines(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

/// Lay out the enclave of the manifest at `path`.
pub fn build(path: &Path, pairs: &[(String, String)]) -> anyhow::Result<BuiltImage> {
    build_image(path, &defines(pairs)).with_context(|| {
        format!(
            "cannot build the enclave image of manifest {}",
            path.display()
        )
    })
}

/// Write `path` through a temporary file in the same directory, renamed
/// into place at the end, so that a failure never leaves half a file.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "cannot write {} (check that its directory exists and is writable)",
                path.display()
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn define_syntax() {
        assert_eq!(parse_define("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_define("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_define("=b").is_err());
        assert!(parse_define("ab").unwrap_err().contains("NAME=VALUE"));
        let d = defines(&[("x".into(), "1".into()), ("x".into(), "2".into())]);
        assert_eq!(d["x"], "2");
    }

    #[test]
    fn atomic_write_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        write_atomically(&out, |w| w.write_all(b"hello")).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello");
        let e = write_atomically(&out, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(format!("{e:#}").contains("out.bin"));
        assert_eq!(fs::read(&out).unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let e =
            write_atomically(&dir.path().join("no/such/dir/x"), |w| w.write_all(b"x")).unwrap_err();
        assert!(format!("{e:#}").contains("no/such/dir/x"), "{e:#}");
    }
}
