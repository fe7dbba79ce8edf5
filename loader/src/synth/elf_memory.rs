//! The ELF facts synthesis keeps between starts ([`super::closure::Linker`]),
//! in a compact binary form: as JSON, its ~180 entries for a Python took
//! each zero-config start 0.2 ms to parse.
//!
//! Layout (little-endian): the magic, a u32 count, then per entry the path,
//! the stamp (u64 size, i64 mtime, mtime_nsec, ctime, ctime_nsec, u64 ino,
//! dev) and the facts (interp and soname as an optional string, needed,
//! rpath and runpath as string lists, nodeflib as a byte). A string is a
//! u32 length and UTF-8; an optional string is a byte (0 or 1) and then the
//! string; a list is a u32 count and its strings. Anything else decodes as
//! nothing (the memory is rebuilt).

use super::cache::Stamp;
use super::elf::ElfInfo;

const MAGIC: &[u8; 8] = b"CONFELF1";

pub(crate) fn encode(entries: &[(&String, &Stamp, &ElfInfo)]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128 * entries.len() + 12));
    w.0.extend_from_slice(MAGIC);
    w.u32(entries.len() as u32);
    for (path, s, i) in entries {
        w.str(path);
        for v in [
            s.size,
            s.mtime as u64,
            s.mtime_nsec as u64,
            s.ctime as u64,
            s.ctime_nsec as u64,
            s.ino,
            s.dev,
        ] {
            w.0.extend_from_slice(&v.to_le_bytes());
        }
        w.opt(&i.interp);
        w.list(&i.needed);
        w.opt(&i.soname);
        w.list(&i.rpath);
        w.list(&i.runpath);
        w.0.push(i.nodeflib as u8);
    }
    w.0
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<(String, Stamp, ElfInfo)>> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let n = r.u32()? as usize;
    // Each entry takes at least 4 + 56 + 1 + 4 + 1 + 4 + 4 + 1 bytes.
    if n > r.0.len() / 75 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let path = r.str()?;
        let stamp = Stamp {
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_nsec: r.u64()? as i64,
            ctime: r.u64()? as i64,
            ctime_nsec: r.u64()? as i64,
            ino: r.u64()?,
            dev: r.u64()?,
        };
        let info = ElfInfo {
            interp: r.opt()?,
            needed: r.list()?,
            soname: r.opt()?,
            rpath: r.list()?,
            runpath: r.list()?,
            nodeflib: match r.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return None,
            },
        };
        out.push((path, stamp, info));
    }
    r.0.is_empty().then_some(out)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt(&mut self, s: &Option<String>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn list(&mut self, l: &[String]) {
        self.u32(l.len() as u32);
        for s in l {
            self.str(s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.take(1)?[0] {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    fn list(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        if n > self.0.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(String, Stamp, ElfInfo)> {
        let stamp = |n: u64| Stamp {
            size: n,
            mtime: -(n as i64),
            mtime_nsec: 7,
            ctime: 8,
            ctime_nsec: 9,
            ino: n * 3,
            dev: 65024,
        };
        vec![
            (
                "/usr/bin/python3.11".into(),
                stamp(1),
                ElfInfo {
                    interp: Some("/lib64/ld-linux-x86-64.so.2".into()),
                    needed: vec!["libm.so.6".into(), "libc.so.6".into()],
                    ..Default::default()
                },
            ),
            (
                "/opt/app/lib/libx.so".into(),
                stamp(2),
                ElfInfo {
                    soname: Some("libx.so".into()),
                    rpath: vec!["$ORIGIN".into()],
                    runpath: vec!["/opt/lib".into(), "$ORIGIN/../lib".into()],
                    nodeflib: true,
                    ..Default::default()
                },
            ),
        ]
    }

    #[test]
    fn entries_come_back_as_stored() {
        let s = sample();
        let refs: Vec<_> = s.iter().map(|(p, st, i)| (p, st, i)).collect();
        assert_eq!(decode(&encode(&refs)).unwrap(), s);
    }

    #[test]
    fn damaged_memory_decodes_as_nothing() {
        let s = sample();
        let refs: Vec<_> = s.iter().map(|(p, st, i)| (p, st, i)).collect();
        let bytes = encode(&refs);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_none(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(b"[[\"/x\",{}]]").is_none(), "the JSON form");
        // Any single byte changed: decodes or not, never panics.
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0xa5;
            let _ = decode(&b);
        }
    }
}
