//! Cross-checks against an independent implementation: Fortanix's `sgxs`
//! crate reads our SGXS streams and hashes them itself, builds SIGSTRUCTs
//! with its own layout code that we must verify, and checks ours.

use conf_abi::manifest::ResolvedManifest;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey};
use sgxs::crypto::{SgxHashOps, SgxRsaOps};
use sgxs::sgxs::{CanonicalSgxsReader, PageReader};
use sgxs::sigstruct::{EnclaveHash, Signer};
use sha2::{Digest, Sha256};

use super::sigstruct::{parse_signing_key_pem, SigDate, SignParams, Sigstruct};
use crate::image::EnclaveLayout;

/// An ELF with an RX segment of two pages and an RW segment with a bss
/// tail, enough for [`EnclaveLayout::build`].
fn small_elf() -> Vec<u8> {
    let mut f = vec![0u8; 0x4000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&3u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&0x1010u64.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    let mut ph = |at: usize, flags: u32, off: u64, filesz: u64, memsz: u64| {
        f[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        f[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
        for field in [8, 16, 24] {
            f[at + field..at + field + 8].copy_from_slice(&off.to_le_bytes());
        }
        f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
        f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        f[at + 48..at + 56].copy_from_slice(&0x1000u64.to_le_bytes());
    };
    ph(64, 5, 0x1000, 0x2000, 0x2000);
    ph(120, 6, 0x3000, 0x800, 0x5000);
    for (i, b) in f[0x1000..].iter_mut().enumerate() {
        *b = (i % 241) as u8 ^ 0x5a;
    }
    f
}

fn layout(edmm: bool) -> EnclaveLayout {
    let m = ResolvedManifest {
        enclave_size: 1 << 25,
        max_threads: 2,
        edmm,
        entrypoint: "/bin/true".into(),
        ..Default::default()
    };
    EnclaveLayout::build(small_elf().leak(), &m, &std::sync::Arc::new(m.encode())).unwrap()
}

struct Sha(Sha256);

impl SgxHashOps for Sha {
    fn new() -> Self {
        Sha(Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data)
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[test]
fn sgxs_crate_measures_our_stream_the_same() {
    for edmm in [false, true] {
        let l = layout(edmm);
        let mut bytes = Vec::new();
        l.write_sgxs(&mut bytes).unwrap();
        let mut stream = &bytes[..];
        let mut canonical = CanonicalSgxsReader::new(&mut stream);
        let theirs = EnclaveHash::from_stream::<_, Sha>(&mut canonical)
            .unwrap()
            .hash();
        assert_eq!(theirs, l.mrenclave(), "edmm = {edmm}");
    }
}

#[test]
fn sgxs_crate_reads_back_our_pages() {
    let l = layout(false);
    let mut bytes = Vec::new();
    l.write_sgxs(&mut bytes).unwrap();
    let mut stream = &bytes[..];
    let (create, mut reader) = PageReader::new(&mut stream).unwrap();
    assert!(create.sized);
    assert_eq!({ create.ecreate.size }, l.size);
    assert_eq!({ create.ecreate.ssaframesize }, l.ssa_frame_pages);
    let mut ours = l.added_pages();
    let mut tcs = 0;
    while let Some((eadd, chunks, data)) = reader.read_page().unwrap() {
        let page = ours.next().expect("sgxs read more pages than we added");
        assert_eq!(eadd.offset, page.offset);
        assert_eq!(
            eadd.secinfo.flags.bits(),
            page.secinfo_flags,
            "page {:#x}",
            page.offset
        );
        if page.measured {
            assert_eq!(chunks.0, 0xffff);
            assert_eq!(data, page.contents());
        } else {
            assert_eq!(chunks.0, 0);
        }
        if eadd.secinfo.flags.page_type() == 1 {
            tcs += 1;
        }
    }
    assert!(ours.next().is_none(), "sgxs read fewer pages than we added");
    assert_eq!(tcs, 2);
}

/// RSA operations for the `sgxs` signer, done on the raw numbers here
/// (PKCS#1 v1.5 encoding by hand, then m^d mod n) rather than with our code.
struct Key(RsaPrivateKey);

const DIGEST_INFO_SHA256: &str = "3031300d060960864801650304020105000420";

impl Key {
    fn encoded(&self, hash: &[u8]) -> BigUint {
        let mut em = vec![0x00, 0x01];
        let t = [
            super::hex::decode(DIGEST_INFO_SHA256).unwrap(),
            hash.to_vec(),
        ]
        .concat();
        em.resize(384 - t.len() - 1, 0xff);
        em.push(0);
        em.extend_from_slice(&t);
        BigUint::from_bytes_be(&em)
    }
}

#[derive(Debug)]
struct Mismatch;
impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("signature mismatch")
    }
}
impl std::error::Error for Mismatch {}

impl SgxRsaOps for Key {
    type Error = Mismatch;

    fn len(&self) -> usize {
        self.0.n().bits()
    }

    fn sign_sha256_pkcs1v1_5_with_q1_q2<H: AsRef<[u8]>>(
        &self,
        hash: H,
    ) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), Mismatch> {
        let n = self.0.n();
        let s = self.encoded(hash.as_ref()).modpow(self.0.d(), n);
        let s2 = &s * &s;
        let q1 = &s2 / n;
        let q2 = (&s2 % n) * &s / n;
        Ok((s.to_bytes_le(), q1.to_bytes_le(), q2.to_bytes_le()))
    }

    fn verify_sha256_pkcs1v1_5<S: AsRef<[u8]>, H: AsRef<[u8]>>(
        &self,
        sig: S,
        hash: H,
    ) -> Result<(), Mismatch> {
        let s = BigUint::from_bytes_le(sig.as_ref());
        let m = s.modpow(self.0.e(), self.0.n());
        if m == self.encoded(hash.as_ref()) {
            Ok(())
        } else {
            Err(Mismatch)
        }
    }

    fn e(&self) -> Vec<u8> {
        self.0.e().to_bytes_le()
    }

    fn n(&self) -> Vec<u8> {
        self.0.n().to_bytes_le()
    }
}

fn key() -> RsaPrivateKey {
    parse_signing_key_pem(include_str!("testdata/signing-key-3072-e3.pem")).unwrap()
}

#[test]
fn we_verify_what_the_sgxs_signer_makes() {
    let mrenclave = layout(false).mrenclave();
    let mut signer = Signer::new(EnclaveHash::new(mrenclave));
    signer.date(2024, 12, 9).isvprodid(77).isvsvn(3);
    let theirs = signer.sign::<_, Sha>(&Key(key())).unwrap();
    let ours = Sigstruct::parse(theirs.as_ref()).unwrap();
    ours.verify().unwrap();
    assert_eq!(ours.mrenclave(), mrenclave);
    assert_eq!(
        (ours.isvprodid(), ours.isvsvn(), ours.debug()),
        (77, 3, false)
    );
    assert_eq!(ours.date().unwrap().to_string(), "2024-12-09");
    assert_eq!(
        ours.mrsigner(),
        <[u8; 32]>::from(Sha256::digest(key().n().to_bytes_le()))
    );

    // And a changed ISVSVN no longer verifies.
    let mut bytes = ours.to_bytes();
    bytes[1026] ^= 1;
    assert!(Sigstruct::parse(&bytes).unwrap().verify().is_err());
}

#[test]
fn the_sgxs_crate_verifies_what_we_make() {
    let params = SignParams {
        mrenclave: layout(true).mrenclave(),
        isvprodid: 9,
        isvsvn: 65535,
        debug: true,
        date: SigDate::new(2025, 2, 28).unwrap(),
    };
    let ours = Sigstruct::sign(&key(), &params).unwrap();
    let theirs = sgxs::sigstruct::Sigstruct::try_copy_from(ours.as_bytes()).unwrap();
    sgxs::sigstruct::verify::<_, Sha>(&theirs, &Key(key())).unwrap();
    assert_eq!(theirs.enclavehash, params.mrenclave);
    assert_eq!((theirs.isvprodid, theirs.isvsvn), (9, 65535));
    assert_eq!(theirs.date, 0x2025_0228);
    assert_eq!(theirs.exponent, 3);
    assert_eq!(theirs.vendor, 0);
    assert!(theirs.attributes.flags.contains(
        sgxs::sigstruct::AttributesFlags::DEBUG | sgxs::sigstruct::AttributesFlags::MODE64BIT
    ));
    assert!(!theirs
        .attributes
        .flags
        .contains(sgxs::sigstruct::AttributesFlags::INIT));
    assert_eq!(theirs.attributes.xfrm, 3);
    // The Q1/Q2 the sgxs-side arithmetic gives for our signature are ours.
    let (_, q1, q2) = {
        let s = BigUint::from_bytes_le(&theirs.signature);
        let n = key().n().clone();
        let s2 = &s * &s;
        (s.clone(), &s2 / &n, (&s2 % &n) * &s / &n)
    };
    assert_eq!(BigUint::from_bytes_le(&theirs.q1), q1);
    assert_eq!(BigUint::from_bytes_le(&theirs.q2), q2);
}
