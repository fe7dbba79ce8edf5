//! SIGSTRUCT: the enclave signer's statement that binds MRENCLAVE to a key
//! (MRSIGNER), a product and a security version (SDM vol. 3D, "Enclave
//! Signature Structure (SIGSTRUCT)").
//!
//! Layout (offsets in bytes, multi-byte integers little-endian):
//!
//! | offset | size | field                                          | signed |
//! |-------:|-----:|------------------------------------------------|--------|
//! |      0 |   16 | HEADER `06000000E10000000000010000000000`      | yes    |
//! |     16 |    4 | VENDOR: 0, or 0x8086 for Intel enclaves        | yes    |
//! |     20 |    4 | DATE: BCD `yyyymmdd`                           | yes    |
//! |     24 |   16 | HEADER2 `01010000600000006000000001000000`     | yes    |
//! |     40 |    4 | SWDEFINED                                      | yes    |
//! |     44 |   84 | reserved                                       | yes    |
//! |    128 |  384 | MODULUS                                        | no     |
//! |    512 |    4 | EXPONENT (3)                                   | no     |
//! |    516 |  384 | SIGNATURE                                      | no     |
//! |    900 |    4 | MISCSELECT                                     | yes    |
//! |    904 |    4 | MISCMASK                                       | yes    |
//! |    908 |    1 | CET_ATTRIBUTES                                 | yes    |
//! |    909 |    1 | CET_ATTRIBUTES_MASK                            | yes    |
//! |    910 |    2 | reserved                                       | yes    |
//! |    912 |   16 | ISVFAMILYID                                    | yes    |
//! |    928 |   16 | ATTRIBUTES (FLAGS u64, XFRM u64)               | yes    |
//! |    944 |   16 | ATTRIBUTEMASK                                  | yes    |
//! |    960 |   32 | ENCLAVEHASH (MRENCLAVE)                        | yes    |
//! |    992 |   16 | reserved                                       | yes    |
//! |   1008 |   16 | ISVEXTPRODID                                   | yes    |
//! |   1024 |    2 | ISVPRODID                                      | yes    |
//! |   1026 |    2 | ISVSVN                                         | yes    |
//! |   1028 |   12 | reserved                                       | no     |
//! |   1040 |  384 | Q1                                             | no     |
//! |   1424 |  384 | Q2                                             | no     |
//!
//! The signature is RSASSA-PKCS1-v1_5 with SHA-256 over bytes 0..128 followed
//! by bytes 900..1028, with a 3072-bit key whose public exponent is 3. The
//! big numbers are stored little-endian. Q1 and Q2 let the CPU check the
//! signature without dividing: Q1 = ⌊S²/M⌋, Q2 = ⌊(S³ − Q1·S·M)/M⌋.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::hex;

/// Size of a SIGSTRUCT.
pub const SIGSTRUCT_SIZE: usize = 1808;
/// Required HEADER.
pub const HEADER: [u8; 16] = [0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0];
/// Required HEADER2.
pub const HEADER2: [u8; 16] = [
    0x01, 0x01, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 0x01, 0, 0, 0,
];
/// VENDOR of Intel's own enclaves.
pub const VENDOR_INTEL: u32 = 0x8086;
/// Size in bits of the RSA key SGX uses.
pub const KEY_BITS: usize = 3072;
/// Public exponent SGX requires.
pub const KEY_EXPONENT: u32 = 3;
const KEY_BYTES: usize = KEY_BITS / 8;

/// Field offsets.
pub mod offset {
    pub const HEADER: usize = 0;
    pub const VENDOR: usize = 16;
    pub const DATE: usize = 20;
    pub const HEADER2: usize = 24;
    pub const SWDEFINED: usize = 40;
    pub const MODULUS: usize = 128;
    pub const EXPONENT: usize = 512;
    pub const SIGNATURE: usize = 516;
    pub const MISCSELECT: usize = 900;
    pub const MISCMASK: usize = 904;
    pub const CET_ATTRIBUTES: usize = 908;
    pub const CET_ATTRIBUTES_MASK: usize = 909;
    pub const ISVFAMILYID: usize = 912;
    pub const ATTRIBUTES: usize = 928;
    pub const ATTRIBUTEMASK: usize = 944;
    pub const ENCLAVEHASH: usize = 960;
    pub const ISVEXTPRODID: usize = 1008;
    pub const ISVPRODID: usize = 1024;
    pub const ISVSVN: usize = 1026;
    pub const Q1: usize = 1040;
    pub const Q2: usize = 1424;
    /// The two signed ranges.
    pub const SIGNED: [core::ops::Range<usize>; 2] = [0..128, 900..1028];
}

/// ATTRIBUTES.FLAGS and XFRM bits (SDM vol. 3D, "ATTRIBUTES").
pub mod attr {
    pub const INIT: u64 = 1 << 0;
    pub const DEBUG: u64 = 1 << 1;
    pub const MODE64BIT: u64 = 1 << 2;
    pub const PROVISIONKEY: u64 = 1 << 4;
    pub const EINITTOKENKEY: u64 = 1 << 5;
    pub const CET: u64 = 1 << 6;
    pub const KSS: u64 = 1 << 7;
    pub const AEXNOTIFY: u64 = 1 << 10;

    /// XFRM (the XCR0 the enclave runs with): x87 and SSE state.
    pub const XFRM_LEGACY: u64 = 0x3;
    pub const XFRM_AVX: u64 = 0x4;
    pub const XFRM_MPX: u64 = 0x18;
    pub const XFRM_AVX512: u64 = 0xe0;
    pub const XFRM_PKRU: u64 = 0x200;
    pub const XFRM_AMX: u64 = 0x60000;
    /// User state components an enclave may enable beyond the legacy ones.
    pub const XFRM_OPTIONAL: u64 = XFRM_AVX | XFRM_MPX | XFRM_AVX512 | XFRM_PKRU | XFRM_AMX;

    /// MISCSELECT bit: report #PF/#GP details (EXINFO) in the SSA.
    pub const MISC_EXINFO: u32 = 1;
}

/// What conf puts in the SIGSTRUCTs it signs (see docs/cli-conf.md). EINIT
/// accepts an enclave when `SECS.X & MASK == SIGSTRUCT.X & MASK`.
pub mod policy {
    use super::attr;
    /// The LibOS reads the faulting address of #PF/#GP from EXINFO, which
    /// sits just below the GPR area of its SSA frames.
    pub const MISCSELECT: u32 = attr::MISC_EXINFO;
    /// Every MISCSELECT bit is enforced: each one changes the SSA layout.
    pub const MISCMASK: u32 = !0;
    /// MODE64BIT, plus DEBUG when the manifest asks for a debug enclave.
    pub const FLAGS: u64 = attr::MODE64BIT;
    /// Every flag is enforced, DEBUG included: a production signature does
    /// not launch a debug enclave, and nothing the manifest did not ask
    /// for (PROVISIONKEY, KSS, ...) can be switched on at launch.
    pub const FLAGS_MASK: u64 = !0;
    /// x87 and SSE are required...
    pub const XFRM: u64 = attr::XFRM_LEGACY;
    /// ...the known optional components (AVX, AVX-512, MPX, PKRU, AMX) are
    /// left to the loader, which enables what the CPU has (the SSA frames
    /// are sized for all of them), and unknown bits must stay clear. This
    /// is the XFRM mask Intel's signing tool uses.
    pub const XFRM_MASK: u64 = !attr::XFRM_OPTIONAL;
}

/// ATTRIBUTES or ATTRIBUTEMASK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub flags: u64,
    pub xfrm: u64,
}

/// A calendar date as a SIGSTRUCT carries it (BCD `yyyymmdd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SigDate {
    year: u16,
    month: u8,
    day: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl SigDate {
    /// A valid date in years 1..=9999, or `None`.
    pub fn new(year: u16, month: u8, day: u8) -> Option<SigDate> {
        let ok = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        ok.then_some(SigDate { year, month, day })
    }

    pub fn year(&self) -> u16 {
        self.year
    }

    pub fn month(&self) -> u8 {
        self.month
    }

    pub fn day(&self) -> u8 {
        self.day
    }

    /// Parse `YYYYMMDD` (as `--date` takes it).
    pub fn parse(s: &str) -> Result<SigDate, SigstructError> {
        let bad = |reason: &str| SigstructError::BadDate {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected eight digits"));
        }
        let year: u16 = s[0..4].parse().expect("digits");
        let month: u8 = s[4..6].parse().expect("digits");
        let day: u8 = s[6..8].parse().expect("digits");
        if !(1..=12).contains(&month) {
            return Err(bad("the month is not 01 to 12"));
        }
        SigDate::new(year, month, day).ok_or_else(|| bad("no such day"))
    }

    /// Decode a BCD `yyyymmdd`; `None` if it is not a valid date.
    pub fn from_bcd(v: u32) -> Option<SigDate> {
        let digits = format!("{v:08x}");
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        SigDate::parse(&digits).ok()
    }

    /// The BCD `yyyymmdd` form.
    pub fn to_bcd(&self) -> u32 {
        let s = format!("{:04}{:02}{:02}", self.year, self.month, self.day);
        u32::from_str_radix(&s, 16).expect("decimal digits are hex digits")
    }

    /// The date `days` days after 1970-01-01 (proleptic Gregorian calendar).
    pub fn from_unix_days(days: i64) -> SigDate {
        // Count from 0000-03-01 so that leap days fall at the end of a
        // year, in 400-year eras of 146097 days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        SigDate {
            year: year.clamp(1, 9999) as u16,
            month,
            day,
        }
    }

    /// Today, in UTC.
    pub fn today_utc() -> SigDate {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        SigDate::from_unix_days((secs / 86_400) as i64)
    }
}

impl fmt::Display for SigDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// What a signer decides about an enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignParams {
    pub mrenclave: [u8; 32],
    pub isvprodid: u16,
    pub isvsvn: u16,
    /// Sign for a debug enclave (ATTRIBUTES.DEBUG).
    pub debug: bool,
    pub date: SigDate,
}

#[derive(Debug, thiserror::Error)]
pub enum SigstructError {
    #[error("truncated SIGSTRUCT: {len} bytes, expected 1808")]
    Truncated { len: usize },
    #[error("not a SIGSTRUCT: {len} bytes, expected 1808")]
    TooLong { len: usize },
    #[error("not a SIGSTRUCT: {field} is {found}, expected {expected}; the file is corrupt or is not a .sig file")]
    BadHeader {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("not a SIGSTRUCT: VENDOR is {0:#x}, SGX accepts only 0 or 0x8086")]
    BadVendor(u32),
    #[error("bad SIGSTRUCT: EXPONENT is {0}, SGX requires 3")]
    BadExponent(u32),
    #[error("bad SIGSTRUCT: MODULUS is a {0}-bit number, SGX requires an RSA-3072 key")]
    BadModulus(u64),
    #[error(
        "bad signature: the RSA signature does not match the signed fields (they were changed after \
         signing, or it was made with another key); sign again with `conf sign`"
    )]
    BadSignature,
    #[error("bad SIGSTRUCT: {0} does not match the signature, so EINIT would reject it; sign again with `conf sign`")]
    BadQ(&'static str),
    #[error(
        "conf needs an RSA-3072 key with public exponent 3, this key is {bits}-bit with exponent {exponent}; \
         create one with `conf keygen -o KEY.pem`"
    )]
    WrongKey { bits: usize, exponent: String },
    #[error("cannot read signing key {}: {err}{}", path.display(), key_hint(err))]
    KeyRead { path: PathBuf, err: io::Error },
    #[error(
        "{}: not an RSA private key in PEM form (PKCS#1 \"RSA PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\"): {reason}; \
         create one with `conf keygen -o KEY.pem`", path.display()
    )]
    KeyParse { path: PathBuf, reason: String },
    #[error("cannot read SIGSTRUCT {}: {err}", path.display())]
    SigRead { path: PathBuf, err: io::Error },
    #[error("{}: {err}", path.display())]
    InFile {
        path: PathBuf,
        err: Box<SigstructError>,
    },
    #[error("invalid date {input:?}: {reason}; give it as YYYYMMDD, e.g. 20250131")]
    BadDate { input: String, reason: String },
    #[error("RSA signing failed: {0}")]
    Rsa(rsa::Error),
}

// Not `#[from]`: that would also make the rsa::Error the `source`, and
// error reports would print it twice.
impl From<rsa::Error> for SigstructError {
    fn from(e: rsa::Error) -> Self {
        SigstructError::Rsa(e)
    }
}

fn key_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::NotFound {
        "; create a key with `conf keygen -o KEY.pem`, or give the right path with --key"
    } else {
        ""
    }
}

impl SigstructError {
    fn in_file(self, path: &Path) -> SigstructError {
        SigstructError::InFile {
            path: path.to_owned(),
            err: Box::new(self),
        }
    }
}

/// Check that `key` is one SGX accepts: 3072 bits, public exponent 3.
pub fn check_signing_key(key: &impl PublicKeyParts) -> Result<(), SigstructError> {
    let bits = key.n().bits();
    if bits != KEY_BITS || *key.e() != BigUint::from(KEY_EXPONENT) {
        return Err(SigstructError::WrongKey {
            bits,
            exponent: key.e().to_string(),
        });
    }
    Ok(())
}

/// Parse a PEM RSA private key: PKCS#1 ("RSA PRIVATE KEY", what
/// `openssl genrsa -traditional` and `conf keygen` write) or PKCS#8
/// ("PRIVATE KEY", what `openssl genrsa` writes by default).
pub fn parse_signing_key_pem(pem: &str) -> Result<RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let pem = pem.trim_start();
    if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())
    } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())
    } else if pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Err("the key is encrypted; decrypt it first (openssl rsa -in KEY -out PLAIN.pem)".into())
    } else {
        Err("no \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN PRIVATE KEY-----\" line at the start".into())
    }
}

/// Read and check the signing key at `path`. Every error names the file.
pub fn read_signing_key(path: &Path) -> Result<RsaPrivateKey, SigstructError> {
    let bytes = std::fs::read(path).map_err(|err| SigstructError::KeyRead {
        path: path.to_owned(),
        err,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SigstructError::KeyParse {
        path: path.to_owned(),
        reason: "the file is not text".into(),
    })?;
    let key = parse_signing_key_pem(&text).map_err(|reason| SigstructError::KeyParse {
        path: path.to_owned(),
        reason,
    })?;
    check_signing_key(&key).map_err(|e| e.in_file(path))?;
    Ok(key)
}

/// DER prefix of a SHA-256 DigestInfo (RFC 8017, section 9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

fn pkcs1v15_sha256() -> Pkcs1v15Sign {
    Pkcs1v15Sign {
        hash_len: Some(32),
        prefix: Box::new(SHA256_DIGEST_INFO),
    }
}

/// `v` as exactly `KEY_BYTES` little-endian bytes (`v` must fit).
fn to_le_fixed(v: &BigUint) -> [u8; KEY_BYTES] {
    let le = v.to_bytes_le();
    assert!(le.len() <= KEY_BYTES, "value wider than the key");
    let mut out = [0u8; KEY_BYTES];
    out[..le.len()].copy_from_slice(&le);
    out
}

/// Q1 = ⌊S²/M⌋ and Q2 = ⌊(S³ − Q1·S·M)/M⌋.
fn q1_q2(s: &BigUint, m: &BigUint) -> (BigUint, BigUint) {
    let s2 = s * s;
    let q1 = &s2 / m;
    let q2 = (&s2 * s - &q1 * s * m) / m;
    (q1, q2)
}

/// A SIGSTRUCT, kept as its 1808 bytes so that one made by any SGX tool
/// round-trips unchanged.
#[derive(Clone, PartialEq, Eq)]
pub struct Sigstruct {
    bytes: Box<[u8; SIGSTRUCT_SIZE]>,
}

impl fmt::Debug for Sigstruct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sigstruct")
            .field("mrenclave", &hex::encode(self.mrenclave()))
            .field("mrsigner", &hex::encode(self.mrsigner()))
            .field("isvprodid", &self.isvprodid())
            .field("isvsvn", &self.isvsvn())
            .field("debug", &self.debug())
            .field("date", &format_args!("{:08x}", self.date_bcd()))
            .finish_non_exhaustive()
    }
}

impl Sigstruct {
    /// Parse a SIGSTRUCT: checks its length and fixed headers only, so that
    /// any well-formed one can be inspected; [`Sigstruct::verify`] checks the
    /// signature.
    ///
    /// HEADER bytes 12..16 may be 0x80000000 as well as 0: Intel's signing
    /// tool marks debug builds there.
    pub fn parse(bytes: &[u8]) -> Result<Sigstruct, SigstructError> {
        let bytes: &[u8; SIGSTRUCT_SIZE] = match bytes.len() {
            SIGSTRUCT_SIZE => bytes.try_into().expect("length checked"),
            len if len < SIGSTRUCT_SIZE => return Err(SigstructError::Truncated { len }),
            len => return Err(SigstructError::TooLong { len }),
        };
        let header = &bytes[offset::HEADER..offset::HEADER + 16];
        let header_type = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if header[..12] != HEADER[..12] || (header_type != 0 && header_type != 0x8000_0000) {
            return Err(SigstructError::BadHeader {
                field: "HEADER",
                found: hex::encode(header).to_uppercase(),
                expected: hex::encode(HEADER).to_uppercase(),
            });
        }
        let header2 = &bytes[offset::HEADER2..offset::HEADER2 + 16];
        if header2 != HEADER2 {
            return Err(SigstructError::BadHeader {
                field: "HEADER2",
                found: hex::encode(header2).to_uppercase(),
                expected: hex::encode(HEADER2).to_uppercase(),
            });
        }
        let s = Sigstruct {
            bytes: Box::new(*bytes),
        };
        if s.vendor() != 0 && s.vendor() != VENDOR_INTEL {
            return Err(SigstructError::BadVendor(s.vendor()));
        }
        Ok(s)
    }

    /// Read and parse the SIGSTRUCT file at `path`; errors name the file.
    pub fn read_file(path: &Path) -> Result<Sigstruct, SigstructError> {
        let bytes = std::fs::read(path).map_err(|err| SigstructError::SigRead {
            path: path.to_owned(),
            err,
        })?;
        Sigstruct::parse(&bytes).map_err(|e| e.in_file(path))
    }

    /// The 1808 bytes.
    pub fn as_bytes(&self) -> &[u8; SIGSTRUCT_SIZE] {
        &self.bytes
    }

    /// A copy of the 1808 bytes.
    pub fn to_bytes(&self) -> [u8; SIGSTRUCT_SIZE] {
        *self.bytes
    }

    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes[at..at + N]
            .try_into()
            .expect("field inside the SIGSTRUCT")
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.field(at))
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.field(at))
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.field(at))
    }

    pub fn vendor(&self) -> u32 {
        self.u32_at(offset::VENDOR)
    }

    /// DATE as stored: BCD `yyyymmdd`.
    pub fn date_bcd(&self) -> u32 {
        self.u32_at(offset::DATE)
    }

    /// DATE, if it is a valid BCD date.
    pub fn date(&self) -> Option<SigDate> {
        SigDate::from_bcd(self.date_bcd())
    }

    pub fn swdefined(&self) -> u32 {
        self.u32_at(offset::SWDEFINED)
    }

    /// MODULUS, little-endian.
    pub fn modulus(&self) -> &[u8] {
        &self.bytes[offset::MODULUS..offset::MODULUS + KEY_BYTES]
    }

    pub fn exponent(&self) -> u32 {
        self.u32_at(offset::EXPONENT)
    }

    /// SIGNATURE, little-endian.
    pub fn signature(&self) -> &[u8] {
        &self.bytes[offset::SIGNATURE..offset::SIGNATURE + KEY_BYTES]
    }

    pub fn miscselect(&self) -> u32 {
        self.u32_at(offset::MISCSELECT)
    }

    pub fn miscmask(&self) -> u32 {
        self.u32_at(offset::MISCMASK)
    }

    pub fn attributes(&self) -> Attributes {
        Attributes {
            flags: self.u64_at(offset::ATTRIBUTES),
            xfrm: self.u64_at(offset::ATTRIBUTES + 8),
        }
    }

    pub fn attribute_mask(&self) -> Attributes {
        Attributes {
            flags: self.u64_at(offset::ATTRIBUTEMASK),
            xfrm: self.u64_at(offset::ATTRIBUTEMASK + 8),
        }
    }

    /// ENCLAVEHASH: the MRENCLAVE this SIGSTRUCT vouches for.
    pub fn mrenclave(&self) -> [u8; 32] {
        self.field(offset::ENCLAVEHASH)
    }

    /// MRSIGNER: SHA-256 of the little-endian modulus.
    pub fn mrsigner(&self) -> [u8; 32] {
        Sha256::digest(self.modulus()).into()
    }

    pub fn isvprodid(&self) -> u16 {
        self.u16_at(offset::ISVPRODID)
    }

    pub fn isvsvn(&self) -> u16 {
        self.u16_at(offset::ISVSVN)
    }

    /// Whether ATTRIBUTES asks for a debug enclave.
    pub fn debug(&self) -> bool {
        self.attributes().flags & attr::DEBUG != 0
    }

    /// The bytes the signature covers: 0..128 then 900..1028.
    pub fn signed_bytes(&self) -> Vec<u8> {
        offset::SIGNED
            .iter()
            .flat_map(|r| self.bytes[r.clone()].iter().copied())
            .collect()
    }

    fn signed_hash(&self) -> [u8; 32] {
        Sha256::digest(self.signed_bytes()).into()
    }

    /// Check everything EINIT checks about the signature: exponent 3, a
    /// 3072-bit modulus, the RSA signature over the signed fields, Q1 and Q2.
    /// Whether MRENCLAVE is the right one is for the caller to compare.
    pub fn verify(&self) -> Result<(), SigstructError> {
        if self.exponent() != KEY_EXPONENT {
            return Err(SigstructError::BadExponent(self.exponent()));
        }
        let m = BigUint::from_bytes_le(self.modulus());
        if m.bits() != KEY_BITS {
            return Err(SigstructError::BadModulus(m.bits() as u64));
        }
        let key = RsaPublicKey::new(m.clone(), BigUint::from(KEY_EXPONENT))
            .map_err(|_| SigstructError::BadSignature)?;
        let mut sig_be = self.signature().to_vec();
        sig_be.reverse();
        key.verify(pkcs1v15_sha256(), &self.signed_hash(), &sig_be)
            .map_err(|_| SigstructError::BadSignature)?;
        let s = BigUint::from_bytes_le(self.signature());
        let (q1, q2) = q1_q2(&s, &m);
        if BigUint::from_bytes_le(&self.bytes[offset::Q1..offset::Q1 + KEY_BYTES]) != q1 {
            return Err(SigstructError::BadQ("Q1"));
        }
        if BigUint::from_bytes_le(&self.bytes[offset::Q2..offset::Q2 + KEY_BYTES]) != q2 {
            return Err(SigstructError::BadQ("Q2"));
        }
        Ok(())
    }

    /// Sign `params` with `key` (RSA-3072, exponent 3), filling the other
    /// fields as [`policy`] says. Deterministic: the same key and params give
    /// the same bytes.
    pub fn sign(key: &RsaPrivateKey, params: &SignParams) -> Result<Sigstruct, SigstructError> {
        check_signing_key(key)?;
        let mut b = Box::new([0u8; SIGSTRUCT_SIZE]);
        let put = |b: &mut [u8; SIGSTRUCT_SIZE], at: usize, v: &[u8]| {
            b[at..at + v.len()].copy_from_slice(v)
        };
        put(&mut b, offset::HEADER, &HEADER);
        put(&mut b, offset::VENDOR, &0u32.to_le_bytes());
        put(&mut b, offset::DATE, &params.date.to_bcd().to_le_bytes());
        put(&mut b, offset::HEADER2, &HEADER2);
        put(&mut b, offset::EXPONENT, &KEY_EXPONENT.to_le_bytes());
        put(
            &mut b,
            offset::MISCSELECT,
            &policy::MISCSELECT.to_le_bytes(),
        );
        put(&mut b, offset::MISCMASK, &policy::MISCMASK.to_le_bytes());
        let flags = policy::FLAGS | if params.debug { attr::DEBUG } else { 0 };
        put(&mut b, offset::ATTRIBUTES, &flags.to_le_bytes());
        put(&mut b, offset::ATTRIBUTES + 8, &policy::XFRM.to_le_bytes());
        put(
            &mut b,
            offset::ATTRIBUTEMASK,
            &policy::FLAGS_MASK.to_le_bytes(),
        );
        put(
            &mut b,
            offset::ATTRIBUTEMASK + 8,
            &policy::XFRM_MASK.to_le_bytes(),
        );
        put(&mut b, offset::ENCLAVEHASH, &params.mrenclave);
        put(&mut b, offset::ISVPRODID, &params.isvprodid.to_le_bytes());
        put(&mut b, offset::ISVSVN, &params.isvsvn.to_le_bytes());
        put(&mut b, offset::MODULUS, &to_le_fixed(key.n()));

        let mut s = Sigstruct { bytes: b };
        let sig_be = key.sign(pkcs1v15_sha256(), &s.signed_hash())?;
        let sig = BigUint::from_bytes_be(&sig_be);
        let (q1, q2) = q1_q2(&sig, key.n());
        s.bytes[offset::SIGNATURE..offset::SIGNATURE + KEY_BYTES]
            .copy_from_slice(&to_le_fixed(&sig));
        s.bytes[offset::Q1..offset::Q1 + KEY_BYTES].copy_from_slice(&to_le_fixed(&q1));
        s.bytes[offset::Q2..offset::Q2 + KEY_BYTES].copy_from_slice(&to_le_fixed(&q2));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const TEST_KEY: &str = include_str!("testdata/signing-key-3072-e3.pem");

    fn key() -> RsaPrivateKey {
        parse_signing_key_pem(TEST_KEY).unwrap()
    }

    fn params() -> SignParams {
        SignParams {
            mrenclave: *b"0123456789abcdef0123456789abcdef",
            isvprodid: 0x1234,
            isvsvn: 0x0506,
            debug: true,
            date: SigDate::new(2025, 1, 31).unwrap(),
        }
    }

    #[test]
    fn sign_then_parse_and_verify() {
        let s = Sigstruct::sign(&key(), &params()).unwrap();
        s.verify().unwrap();
        let p = Sigstruct::parse(s.as_bytes()).unwrap();
        assert_eq!(p, s);
        assert_eq!(p.mrenclave(), params().mrenclave);
        assert_eq!(
            (p.isvprodid(), p.isvsvn(), p.debug()),
            (0x1234, 0x0506, true)
        );
        assert_eq!(p.date_bcd(), 0x2025_0131);
        assert_eq!(p.date().unwrap().to_string(), "2025-01-31");
        assert_eq!(p.exponent(), 3);
        assert_eq!(
            p.attributes(),
            Attributes {
                flags: attr::MODE64BIT | attr::DEBUG,
                xfrm: 3
            }
        );
        assert_eq!(p.attributes().flags & attr::INIT, 0);
        let mrsigner: [u8; 32] = Sha256::digest(key().n().to_bytes_le()).into();
        assert_eq!(p.mrsigner(), mrsigner);
        // Fixed fields at their SDM offsets.
        assert_eq!(
            &s.as_bytes()[0..16],
            &hex::decode("06000000E10000000000010000000000").unwrap()[..]
        );
        assert_eq!(
            &s.as_bytes()[24..40],
            &hex::decode("01010000600000006000000001000000").unwrap()[..]
        );
        assert_eq!(&s.as_bytes()[960..992], &params().mrenclave);
        assert_eq!(&s.as_bytes()[1024..1028], &[0x34, 0x12, 0x06, 0x05]);
    }

    #[test]
    fn signing_is_deterministic() {
        let a = Sigstruct::sign(&key(), &params()).unwrap();
        let b = Sigstruct::sign(&key(), &params()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let c = Sigstruct::sign(
            &key(),
            &SignParams {
                debug: false,
                ..params()
            },
        )
        .unwrap();
        assert_ne!(a.to_bytes(), c.to_bytes());
        assert!(!c.debug());
    }

    #[test]
    fn any_change_to_a_signed_byte_fails_verification() {
        let s = Sigstruct::sign(&key(), &params()).unwrap();
        // One byte in each signed field, and the reserved signed bytes.
        for at in [
            20, 40, 100, 900, 904, 908, 912, 928, 936, 944, 952, 960, 991, 995, 1008, 1024, 1026,
        ] {
            let mut b = s.to_bytes();
            b[at] ^= 0x01;
            let t = Sigstruct::parse(&b).unwrap();
            assert!(
                matches!(t.verify(), Err(SigstructError::BadSignature)),
                "byte {at}: {:?}",
                t.verify()
            );
        }
        let mut b = s.to_bytes();
        b[offset::VENDOR..offset::VENDOR + 4].copy_from_slice(&VENDOR_INTEL.to_le_bytes());
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadSignature)
        ));
        // The headers are refused already by parse.
        for at in [0, 30] {
            let mut b = s.to_bytes();
            b[at] ^= 0x01;
            assert!(
                matches!(Sigstruct::parse(&b), Err(SigstructError::BadHeader { .. })),
                "byte {at}"
            );
        }
    }

    #[test]
    fn unsigned_fields_are_checked_too() {
        let s = Sigstruct::sign(&key(), &params()).unwrap();
        let mut b = s.to_bytes();
        b[offset::SIGNATURE + 7] ^= 1;
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadSignature)
        ));
        let mut b = s.to_bytes();
        b[offset::MODULUS + 7] ^= 1;
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadSignature)
        ));
        let mut b = s.to_bytes();
        b[offset::Q1 + 100] ^= 1;
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadQ("Q1"))
        ));
        let mut b = s.to_bytes();
        b[offset::Q2] ^= 1;
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadQ("Q2"))
        ));
        let mut b = s.to_bytes();
        b[offset::EXPONENT] = 0x01;
        b[offset::EXPONENT + 2] = 0x01;
        let e = Sigstruct::parse(&b).unwrap().verify().unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad SIGSTRUCT: EXPONENT is 65537, SGX requires 3"
        );
        let mut b = s.to_bytes();
        b[offset::MODULUS + 383] = 0;
        assert!(matches!(
            Sigstruct::parse(&b).unwrap().verify(),
            Err(SigstructError::BadModulus(_))
        ));
    }

    #[test]
    fn parse_refuses_wrong_sizes_and_headers_but_tolerates_intel_values() {
        let s = Sigstruct::sign(&key(), &params()).unwrap();
        let e = Sigstruct::parse(&s.as_bytes()[..1000]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated SIGSTRUCT: 1000 bytes, expected 1808"
        );
        let mut long = s.as_bytes().to_vec();
        long.push(0);
        assert!(matches!(
            Sigstruct::parse(&long),
            Err(SigstructError::TooLong { len: 1809 })
        ));
        let e = Sigstruct::parse(&[0x55; SIGSTRUCT_SIZE]).unwrap_err();
        assert!(e.to_string().contains("HEADER is 5555"), "{e}");
        // Intel's vendor and its debug marker in HEADER parse.
        let mut b = s.to_bytes();
        b[offset::VENDOR..offset::VENDOR + 4].copy_from_slice(&VENDOR_INTEL.to_le_bytes());
        b[15] = 0x80;
        let p = Sigstruct::parse(&b).unwrap();
        assert_eq!(p.vendor(), 0x8086);
        let mut b = s.to_bytes();
        b[offset::VENDOR] = 7;
        assert!(matches!(
            Sigstruct::parse(&b),
            Err(SigstructError::BadVendor(7))
        ));
    }

    #[test]
    fn wrong_keys_are_refused_with_advice() {
        let mut rng = TestRng(7);
        let small = RsaPrivateKey::new_with_exp(&mut rng, 1024, &BigUint::from(3u32)).unwrap();
        let e = Sigstruct::sign(&small, &params()).unwrap_err().to_string();
        assert!(
            e.contains("RSA-3072")
                && e.contains("1024-bit")
                && e.contains("conf keygen -o KEY.pem"),
            "{e}"
        );
        let e65537 = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let e = Sigstruct::sign(&e65537, &params()).unwrap_err().to_string();
        assert!(e.contains("exponent 65537"), "{e}");
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = read_signing_key(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("conf keygen"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = read_signing_key(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("not an RSA private key"),
            "{e}"
        );
        let good = dir.path().join("good.pem");
        std::fs::write(&good, TEST_KEY).unwrap();
        assert_eq!(read_signing_key(&good).unwrap(), key());
    }

    #[test]
    fn dates() {
        assert_eq!(SigDate::parse("20240229").unwrap().to_bcd(), 0x2024_0229);
        assert!(SigDate::parse("20230229").is_err());
        assert!(SigDate::parse("2024-01-01").is_err());
        assert!(SigDate::parse("20241301")
            .unwrap_err()
            .to_string()
            .contains("month"));
        assert_eq!(SigDate::from_bcd(0x2025_0131), SigDate::new(2025, 1, 31));
        assert_eq!(SigDate::from_bcd(0x2025_013a), None);
        assert_eq!(SigDate::from_unix_days(0).to_string(), "1970-01-01");
        assert_eq!(SigDate::from_unix_days(11_016).to_string(), "2000-02-29");
        assert_eq!(SigDate::from_unix_days(19_782).to_string(), "2024-02-29");
        assert_eq!(SigDate::from_unix_days(20_089).to_string(), "2025-01-01");
        assert!(SigDate::today_utc().year() >= 2024);
    }

    /// A deterministic RNG for the key-size tests (not for real keys).
    struct TestRng(u64);
    impl rsa::rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rsa::rand_core::CryptoRng for TestRng {}
}
