//! The enclave image: page layout and the LibOS it carries.

pub mod build;
pub mod layout;
pub mod measure;

pub use build::{build_image, BuiltImage};
pub use layout::{EnclaveLayout, LayoutError, Measure, PageType, Region};
