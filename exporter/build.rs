//! Links `cellwatch-exporter` as a position-dependent executable on Linux, as Go links
//! node_exporter: without PIE nothing is relocated at start-up, so the executable's 0.3 MiB of
//! relocated pointer tables stay shared, clean file pages and its 0.4 MiB relocation table is
//! never read (about 0.6 MiB less resident memory, `scripts/bench-steady`). The price is that
//! the executable's own code is not address-randomised (shared libraries, heap and stacks still
//! are). Set `CELLWATCH_PIE=1` when building to keep a PIE. A static build (musl, or
//! `-C target-feature=+crt-static`) is left as rustc links it: `-no-pie` would undo its
//! `-static-pie`.

fn main() {
    println!("cargo:rerun-if-env-changed=CELLWATCH_PIE");
    let pie = std::env::var_os("CELLWATCH_PIE").is_some_and(|v| !v.is_empty() && v != "0");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|x| x == "crt-static"));
    if linux && !static_crt && !pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
