//! conf-loader: the untrusted host side of conf.

// Set in clippy.toml for synthesis alone (denied in `synth`).
#![allow(clippy::disallowed_methods)]

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
