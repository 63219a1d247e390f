//! The committed C header (`ffi/include/syros.h`) is the one cbindgen generates from the source
//! now. `SYROS_BLESS_HEADER=1 cargo test -p syros-ffi --test header` rewrites the committed copy.

#[test]
fn committed_header_equals_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/syros.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/syros.h");
    if std::env::var_os("SYROS_BLESS_HEADER").is_some() {
        std::fs::write(committed_path, generated).expect("write include/syros.h");
        return;
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "ffi/include/syros.h differs from the header generated from ffi/src: run \
         `SYROS_BLESS_HEADER=1 cargo test -p syros-ffi --test header` and commit it"
    );
}
