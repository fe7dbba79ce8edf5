//! The enclave image: page layout and the LibOS it carries.

pub mod build;
pub mod layout;
pub mod measure;

pub use build::{
    build_from_manifest, build_image, build_image_with, build_resolved, default_libos, BuiltImage,
};
pub use layout::{EnclaveLayout, LayoutError, Measure, PageType, Region};
