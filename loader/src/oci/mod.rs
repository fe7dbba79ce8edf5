//! Container images: reading them (`docker-archive:`, `oci:`,
//! `oci-archive:`), unpacking their layers into a root file system, and
//! writing the enclave images `conf wrap` makes and `conf-run --image` runs.
//!
//! - [`ImageRef`]: an image named in skopeo's transport syntax.
//! - [`generate`]: the manifest of a wrapped image, from its config.
//! - [`source`]: the image's config and layers, every blob checked against
//!   its digest.
//! - [`unpack`]: layers applied in order (whiteouts, links, modes), with
//!   path traversal refused.
//! - [`write`]: an image with one more layer, as a Docker archive or an OCI
//!   layout.
//! - [`wrapped`]: the conf layer (conf-run, the resolved manifest, the
//!   SIGSTRUCT), the cache of unpacked images, and running a wrapped image.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub mod generate;
pub mod source;
pub mod unpack;
pub mod wrapped;
pub mod write;

/// How an image is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A tar file as `docker save` / `podman save` write it.
    DockerArchive,
    /// An OCI image layout directory.
    Oci,
    /// An OCI image layout in a tar file.
    OciArchive,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::DockerArchive => "docker-archive",
            Transport::Oci => "oci",
            Transport::OciArchive => "oci-archive",
        }
    }
}

/// An image in skopeo's transport syntax: `docker-archive:PATH[:REF]`,
/// `oci:DIR[:REF]`, `oci-archive:PATH[:REF]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub transport: Transport,
    pub path: PathBuf,
    /// The image's name in the archive (`RepoTags` of a Docker archive, the
    /// `org.opencontainers.image.ref.name` annotation of an OCI layout).
    pub reference: Option<String>,
}

impl ImageRef {
    /// Parse `TRANSPORT:PATH[:REF]`. Without a transport, `default` is
    /// used when given (then the whole string is the path).
    pub fn parse(s: &str, default: Option<Transport>) -> Result<ImageRef, String> {
        let known = [
            Transport::DockerArchive,
            Transport::OciArchive,
            Transport::Oci,
        ];
        for t in known {
            if let Some(rest) = s.strip_prefix(t.name()).and_then(|r| r.strip_prefix(':')) {
                let (path, reference) = match rest.split_once(':') {
                    Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
                    Some((p, _)) => (p, None),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(format!("{s}: no path after `{}:`", t.name()));
                }
                return Ok(ImageRef {
                    transport: t,
                    path: PathBuf::from(path),
                    reference,
                });
            }
        }
        if let Some((scheme, _)) = s.split_once(':') {
            if !scheme.contains('/') && !scheme.is_empty() {
                return Err(format!(
                    "{s}: unknown image transport `{scheme}:`; use docker-archive:PATH (what `docker save` writes), oci:DIR[:TAG] or oci-archive:PATH"
                ));
            }
        }
        match default {
            Some(t) => Ok(ImageRef {
                transport: t,
                path: PathBuf::from(s),
                reference: None,
            }),
            None => Err(format!(
                "{s}: give the image as docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH"
            )),
        }
    }

    /// Whether `s` names an image explicitly (has a known transport).
    pub fn has_transport(s: &str) -> bool {
        ["docker-archive:", "oci:", "oci-archive:"]
            .iter()
            .any(|p| s.starts_with(p))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.name(), self.path.display())?;
        if let Some(r) = &self.reference {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::sgx::hex::encode(Sha256::digest(bytes)))
}

/// Whether `d` is a well-formed sha256 digest (`sha256:` + 64 lowercase hex).
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// A reader that hashes (SHA-256) and counts what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Read to the end, then give the digest (`sha256:...`) and the length.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", crate::sgx::hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From the first bytes of a blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// A reader of the uncompressed bytes of `r`.
    pub fn decoder<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// Seconds since 1970 of 00:00 UTC on a SIGSTRUCT date (a fixed time for
/// every timestamp in the conf layer, so that wrapping is reproducible).
pub fn date_epoch(d: &crate::sgx::SigDate) -> u64 {
    // Days from civil (proleptic Gregorian), Howard Hinnant's method.
    let (y, m, day) = (d.year() as i64, d.month() as i64, d.day() as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    (days.max(0) as u64) * 86400
}

/// A progress bar on stderr, only when stderr is a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || total == 0 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn transports() {
        let r = ImageRef::parse("docker-archive:/x/img.tar", None).unwrap();
        assert_eq!(
            (r.transport, r.path.as_path(), r.reference.as_deref()),
            (Transport::DockerArchive, Path::new("/x/img.tar"), None)
        );
        let r = ImageRef::parse("oci:dir:v1", None).unwrap();
        assert_eq!(
            (r.transport, r.path.as_path(), r.reference.as_deref()),
            (Transport::Oci, Path::new("dir"), Some("v1"))
        );
        let r = ImageRef::parse("oci-archive:a.tar:app:1", None).unwrap();
        assert_eq!(
            (r.transport, r.reference.as_deref()),
            (Transport::OciArchive, Some("app:1"))
        );
        assert_eq!(r.to_string(), "oci-archive:a.tar:app:1");
        assert!(ImageRef::parse("docker://x", None)
            .unwrap_err()
            .contains("unknown image transport `docker:`"));
        assert!(ImageRef::parse("oci:", None).is_err());
        assert!(ImageRef::parse("img.tar", None).is_err());
        assert_eq!(
            ImageRef::parse("img.tar", Some(Transport::DockerArchive))
                .unwrap()
                .transport,
            Transport::DockerArchive
        );
        assert_eq!(
            ImageRef::parse("./a/b:c", Some(Transport::DockerArchive))
                .unwrap()
                .path,
            Path::new("./a/b:c")
        );
    }

    #[test]
    fn dates() {
        let d = crate::sgx::SigDate::new(1970, 1, 2).unwrap();
        assert_eq!(date_epoch(&d), 86400);
        let d = crate::sgx::SigDate::new(2025, 1, 31).unwrap();
        assert_eq!(date_epoch(&d), 1738281600);
    }

    #[test]
    fn compression_sniffing() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"usr/"), Compression::None);
    }
}
