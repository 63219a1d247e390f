//! Generates the C header (`$OUT_DIR/syros.h`) from this crate's `extern "C"` items with
//! cbindgen. The committed copy is `include/syros.h`; `tests/header.rs` checks that the two are
//! equal (and rewrites the committed one with `SYROS_BLESS_HEADER=1`).

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("ffi/cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the C header")
        .write_to_file(format!("{out_dir}/syros.h"));
}
