//! Enclave memory: the LibOS heap and the program's address space.

pub mod heap;
