//! conf-loader: the untrusted host side of conf.

pub mod exit;
pub mod image;
pub mod sgx;
pub mod synth;
