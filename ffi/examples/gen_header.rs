//! `make header`: regenerates include/surgewall.h from the ffi sources.

#[path = "../tools/header.rs"]
mod header;

fn main() {
    let path = header::header_path();
    if header::write(&path) {
        println!("wrote {}", path.display());
    } else {
        println!("{} is up to date", path.display());
    }
}
