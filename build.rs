//! Build script: gives the cdylib an ELF SONAME carrying the ABI major number, so that programs
//! linked against `libzerohttp.so` record `libzerohttp.so.0` (not the absolute build path).
//! Bump `ABI_MAJOR` together with any incompatible change to include/zerohttp.h.

const ABI_MAJOR: u32 = 0;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libzerohttp.so.{ABI_MAJOR}");
    }
}
