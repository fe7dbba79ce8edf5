//! SGX structures the host computes and checks without an SGX CPU:
//! MRENCLAVE ([`measure`]), SIGSTRUCT ([`sigstruct`]) and SGXS page
//! streams ([`sgxs`]).

pub mod measure;
pub mod sgxs;
pub mod sigstruct;

#[cfg(test)]
mod interop_tests;

pub use measure::{secinfo, Measurement};
pub use sgxs::{read_sgxs, read_sgxs_file, SgxsError, SgxsInfo, SgxsWriter};
pub use sigstruct::{read_signing_key, SigDate, SignParams, Sigstruct, SigstructError};

/// Lowercase hexadecimal, the form every conf tool prints hashes in.
pub mod hex {
    /// `bytes` as lowercase hex.
    pub fn encode(bytes: impl AsRef<[u8]>) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bytes = bytes.as_ref();
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 0xf) as usize] as char);
        }
        s
    }

    /// Parse hex (either case); `None` unless `s` is an even number of hex digits.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let s = s.as_bytes();
        if !s.len().is_multiple_of(2) {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        s.chunks_exact(2)
            .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trip() {
            assert_eq!(super::encode([0x00, 0xab, 0x7f]), "00ab7f");
            assert_eq!(super::decode("00AB7f"), Some(vec![0x00, 0xab, 0x7f]));
            assert_eq!(super::decode("abc"), None);
            assert_eq!(super::decode("zz"), None);
        }
    }
}
