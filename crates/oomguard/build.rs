//! Link-time layout of the `oomguard` binary: the functions the idle daemon runs are placed
//! next to each other (`link/hot-symbols.txt`, lld's `--symbol-ordering-file`).
//!
//! Why: `oomguard watch` locks its memory with `mlockall(MCL_ONFAULT)` and, once started, drops
//! its file pages and faults back in only what the watch loop and one rehearsed decision touch
//! (`settle_memory` in watch/daemon.rs). A file page fault maps the kernel's whole fault-around
//! window (64 KiB, 16 pages; a whole large folio where the page cache has one) around the
//! faulting page, and every page so mapped stays locked. Unordered, the ~100 functions (130 KiB)
//! the idle daemon runs lay scattered over 20-30 windows of the 2.3 MiB of code, so 1.1-1.6 MiB
//! of the binary's code stayed resident. Ordered, they fill the first 130 KiB of `.text`:
//! 136 KiB resident (34 pages, 3 windows), idle VmRSS 2.1-2.5 MiB -> 1.09-1.14 MiB
//! (measured 2026-11-29, `oomguard watch --mem-min 10% --mem-kill 5%`, 3-6 runs each; earlyoom
//! 1.7 beside it: 1.64-1.80 MiB). `oomguard explain` is as fast as before.
//!
//! The list is produced by `bench/hot_symbols.sh`: a uprobe on every function of a release
//! build, the daemon idle with flags only and with the shipped config, then a check against
//! the page faults of real idle runs (perf). Rust's legacy symbol names hash the item path and
//! the crate's metadata (package, rustc version, profile settings; not the code), so the list
//! survives most edits; a stale or missing name only costs its place in the order
//! (`--no-warn-symbol-ordering`), never the build. After a rustc, dependency or profile change
//! (even `strip`), regenerate it.
//!
//! lld (Rust's default linker on x86_64-unknown-linux-gnu since 1.90) knows the two flags; GNU
//! ld and gold refuse them. So the flags are first tried on an empty program with the same
//! rustc, target, RUSTFLAGS and linker; if that link fails the binary is linked as before, with
//! a cargo warning. `OOMGUARD_SYMBOL_ORDER=off` turns the ordering off;
//! `OOMGUARD_LINK_MAP=PATH` writes the linker's map of the binary (what `bench/hot_symbols.sh`
//! reads).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let order = manifest.join("link").join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OOMGUARD_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=OOMGUARD_LINK_MAP");

    let mut args = Vec::new();
    let off = env::var("OOMGUARD_SYMBOL_ORDER").is_ok_and(|v| v == "off" || v == "0");
    if !off && order.is_file() {
        args.push(format!("-Wl,--symbol-ordering-file={}", order.display()));
        args.push("-Wl,--no-warn-symbol-ordering".to_owned());
    }
    if let Some(map) = env::var_os("OOMGUARD_LINK_MAP").filter(|m| !m.is_empty()) {
        args.push(format!("-Wl,-Map={}", Path::new(&map).display()));
    }
    if args.is_empty() {
        return;
    }
    match linker_accepts(&args) {
        Ok(()) => {
            for a in &args {
                println!("cargo:rustc-link-arg-bin=oomguard={a}");
            }
        }
        Err(why) => println!(
            "cargo:warning=oomguard: linking without the hot-function order ({why}); \
             idle RSS of `oomguard watch` will be ~1 MiB higher"
        ),
    }
}

/// Links an empty program with `args` the way cargo will link the binary (same rustc, target,
/// RUSTFLAGS and configured linker).
fn linker_accepts(args: &[String]) -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let src = out_dir.join("link_probe.rs");
    std::fs::write(&src, "fn main() {}\n").map_err(|e| e.to_string())?;
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-name=link_probe")
        .arg("--edition=2021")
        .arg("-o")
        .arg(out_dir.join("link_probe"))
        .arg(&src);
    if let Ok(target) = env::var("TARGET") {
        cmd.arg("--target").arg(target);
    }
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        cmd.arg(format!("-Clinker={linker}"));
    }
    for a in args {
        // The probe must not overwrite the real map file.
        let a = if a.starts_with("-Wl,-Map=") {
            format!("-Wl,-Map={}", out_dir.join("link_probe.map").display())
        } else {
            a.clone()
        };
        cmd.arg(format!("-Clink-arg={a}"));
    }
    let out = cmd.output().map_err(|e| format!("cannot run rustc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| {
                ["unrecognized option", "unknown option", "unknown argument"]
                    .iter()
                    .any(|p| l.contains(p))
            })
            .or_else(|| err.lines().find(|l| l.starts_with("error")))
            .unwrap_or("the linker refused the flags");
        Err(line.trim().to_owned())
    }
}
