//! conf-loader: the untrusted host side of conf.

pub mod cli;
pub mod exit;
pub mod host;
pub mod image;
pub mod libos;
pub mod oci;
pub mod run;
pub mod sgx;
pub mod sim;
pub mod synth;
