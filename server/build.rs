//! Points the embedded-asset macro at the built web app.
//!
//! `./x` builds the web app into `target/site` and passes its folder as `FIELDMESH_SITE_DIR`.
//! Without a built site (a plain `cargo build`), an empty folder is embedded and the server
//! says so at start; `--site-root` can still serve a site from disk.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=FIELDMESH_SITE_DIR");
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let site = std::env::var_os("FIELDMESH_SITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/site"));
    let site = if site.join("pkg").is_dir() {
        site
    } else {
        let empty =
            PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("no-site");
        std::fs::create_dir_all(&empty).expect("OUT_DIR is writable");
        empty
    };
    // Cargo scans a directory given here for any change inside it.
    println!("cargo:rerun-if-changed={}", site.display());
    println!("cargo:rustc-env=FIELDMESH_EMBED_DIR={}", site.display());
}
