fn main() {
    // Regenerate when any IDL file or the volo config changes.
    println!("cargo:rerun-if-changed=volo.yml");
    println!("cargo:rerun-if-changed=syros");
    println!("cargo:rerun-if-changed=grpc");
    volo_build::ConfigBuilder::default().write().unwrap();
}
