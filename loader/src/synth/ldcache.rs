//! `/etc/ld.so.cache`, glibc's index from library name (soname) to file,
//! written by ldconfig and read by ld.so before it searches the default
//! directories.
//!
//! Format ("glibc-ld.so.cache1.1", little-endian on x86-64): a 48-byte
//! header (17-byte magic, 3-byte version, u32 entry count, u32 string table
//! length, u8 flags, 3 bytes padding, u32 extension offset, 3 unused u32),
//! then 24-byte entries (i32 flags, u32 name offset, u32 path offset, u32
//! unused os version, u64 hwcap), then NUL-terminated strings. String
//! offsets count from the start of that header. Caches written by glibc
//! before 2.32 may start with the old "ld.so-1.7.0" table (16-byte header,
//! 12-byte entries); the new table then follows it, 8-byte aligned.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// ld.so's cache file.
pub(crate) const PATH: &str = "/etc/ld.so.cache";

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
/// FLAG_ELF_LIBC6 | FLAG_X8664_LIB64: a 64-bit x86-64 glibc library.
const X86_64_LIBC6: i32 = 0x0303;

/// A key that is a hash already.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// FNV-1a.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// An x86-64 entry: where its name and path start in the cache, its hwcap.
#[derive(Clone, Copy, Debug)]
struct Entry {
    name: u32,
    path: u32,
    hwcap: u64,
}

/// Library name to the files ld.so would consider for it.
///
/// The entries stay in the cache's bytes, indexed by a hash of their name:
/// a synthesis asks for a few dozen names of the ~800, and turning every
/// entry into strings in a map cost each zero-config start 0.25 ms.
#[derive(Clone, Debug, Default)]
pub(crate) struct LdCache {
    /// The cache, from its new-format header on.
    data: Vec<u8>,
    index: HashMap<u64, Vec<Entry>, BuildHasherDefault<PassThrough>>,
}

impl LdCache {
    /// Parse the cache; `None` if it is not a cache conf understands (the
    /// caller then falls back to the default directories).
    pub(crate) fn parse(data: &[u8]) -> Option<LdCache> {
        let start = if data.starts_with(NEW_MAGIC) {
            0
        } else if data.starts_with(OLD_MAGIC) {
            let n = u32_at(data, 12)? as usize;
            let end = 16usize.checked_add(n.checked_mul(12)?)?;
            let aligned = end.checked_add(7)? & !7;
            if !data.get(aligned..)?.starts_with(NEW_MAGIC) {
                return None;
            }
            aligned
        } else {
            return None;
        };
        let cache = &data[start..];
        let nlibs = u32_at(cache, 20)? as usize;
        if NEW_HEADER.checked_add(nlibs.checked_mul(NEW_ENTRY)?)? > cache.len() {
            return None;
        }
        let mut index: HashMap<u64, Vec<Entry>, BuildHasherDefault<PassThrough>> =
            HashMap::with_capacity_and_hasher(nlibs, Default::default());
        for i in 0..nlibs {
            let e = NEW_HEADER + i * NEW_ENTRY;
            if u32_at(cache, e)? as i32 != X86_64_LIBC6 {
                continue;
            }
            let (name, path) = (u32_at(cache, e + 4)?, u32_at(cache, e + 8)?);
            let Some(key) = cstr_at(cache, name as usize) else {
                continue;
            };
            let hwcap = u64::from_le_bytes(cache.get(e + 16..e + 24)?.try_into().ok()?);
            index
                .entry(name_hash(key.as_bytes()))
                .or_default()
                .push(Entry { name, path, hwcap });
        }
        Some(LdCache {
            data: cache.to_vec(),
            index,
        })
    }

    /// Read and parse [`PATH`]; `None` if it is absent or not understood.
    pub(crate) fn load() -> Option<LdCache> {
        super::observe::read(PATH)
            .ok()
            .and_then(|d| LdCache::parse(&d))
    }

    /// The files for library `name`, best first: the first plain entry
    /// (what ld.so takes), then any entries for glibc-hwcaps subdirectories
    /// (which ld.so prefers when the CPU supports them, so they are trusted
    /// as well).
    pub(crate) fn lookup(&self, name: &str) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        let mut plain = false;
        let entries = self.index.get(&name_hash(name.as_bytes()));
        for e in entries.into_iter().flatten() {
            if cstr_at(&self.data, e.name as usize) != Some(name) {
                continue;
            }
            let Some(path) = cstr_at(&self.data, e.path as usize) else {
                continue;
            };
            if e.hwcap == 0 {
                // Only the first plain entry counts; ld.so stops there.
                if !plain {
                    plain = true;
                    paths.insert(0, path.to_string());
                }
            } else if !paths.iter().any(|p| p == path) {
                paths.push(path.to_string());
            }
        }
        paths
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn cstr_at(d: &[u8], at: usize) -> Option<&str> {
    let rest = d.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache with the given (flags, name, path, hwcap) entries.
    fn build(entries: &[(i32, &str, &str, u64)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut table = Vec::new();
        for (flags, name, path, hwcap) in entries {
            let k = strings_at + strings.len();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let v = strings_at + strings.len();
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(k as u32).to_le_bytes());
            table.extend_from_slice(&(v as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 4 + 4 + 12]);
        assert_eq!(out.len(), NEW_HEADER);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn entries() {
        let c = LdCache::parse(&build(&[
            (0x0303, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0),
            (0x0303, "libz.so.1", "/usr/local/lib/libz.so.1", 0),
            (0x0003, "libz.so.1", "/lib/i386-linux-gnu/libz.so.1", 0),
            (
                0x0303,
                "libz.so.1",
                "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1",
                1 << 62,
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.lookup("libz.so.1"),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1"
            ]
        );
        assert!(c.lookup("libc.so.6").is_empty());
    }

    #[test]
    fn garbage_is_not_a_cache() {
        assert!(LdCache::parse(b"").is_none());
        assert!(LdCache::parse(b"glibc-ld.so.cache1.1").is_none());
        let mut big = build(&[(0x0303, "a", "/a", 0)]);
        big[20] = 0xff; // nlibs far beyond the file
        assert!(LdCache::parse(&big).is_none());
        let mut bad = build(&[(0x0303, "a", "/a", 0)]);
        let n = bad.len();
        bad.truncate(n - 1); // the last string loses its NUL
        assert!(LdCache::parse(&bad).unwrap().lookup("a").is_empty());
    }

    #[test]
    fn old_table_first() {
        let new = build(&[(0x0303, "libm.so.6", "/lib/libm.so.6", 0)]);
        let mut out = OLD_MAGIC.to_vec();
        out.push(0);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&[0u8; 12]);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        out.extend(new);
        let c = LdCache::parse(&out).unwrap();
        assert_eq!(c.lookup("libm.so.6"), ["/lib/libm.so.6"]);
    }

    #[test]
    fn this_machine() {
        if let Ok(d) = std::fs::read(PATH) {
            let c = LdCache::parse(&d).expect("the system cache parses");
            assert!(c.len() > 0);
            let libc = c.lookup("libc.so.6");
            assert!(
                libc.first().is_some_and(|p| p.ends_with("/libc.so.6")),
                "{libc:?}"
            );
        }
    }
}
