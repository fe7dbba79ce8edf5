pub use conf_abi::manifest::ResolvedManifest;
