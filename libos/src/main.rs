//! The LibOS enclave binary: everything lives in the library; this file only
//! makes the linker keep it.
#![no_std]
#![no_main]

extern crate conf_libos;
