//! Compiles the C peers of `ksync bench` where their libraries are installed.
//!
//! Two shims in `csrc/` run liburcu's (memb flavour) and Concurrency Kit's
//! inline fast paths in C loops. Each is built only when `pkg-config` finds
//! its library (`liburcu-memb` from Debian's `liburcu-dev`, `ck` from
//! `libck-dev`) and the C compiler accepts it; it then sets the cfg
//! `ksync_urcu` or `ksync_ck`. Otherwise it sets `KSYNC_URCU_SKIPPED` or
//! `KSYNC_CK_SKIPPED` to the reason, the bench skips those rows and its table
//! says which package would add them. The command builds, tests and runs the
//! same either way.
//!
//! `KSYNC_NO_C_PEERS=1` turns both off (to build as a machine without the
//! packages would).

use std::env;

/// One C peer: the pkg-config module to probe, its shim, and whether to link
/// the library (CK's spinlocks are header-only; liburcu's read side uses its
/// thread-local state and its grace periods and callbacks live in the library).
struct Peer {
    cfg: &'static str,
    module: &'static str,
    package: &'static str,
    source: &'static str,
    link: bool,
    skipped_var: &'static str,
}

const PEERS: [Peer; 2] = [
    Peer {
        cfg: "ksync_urcu",
        module: "liburcu-memb",
        package: "liburcu-dev",
        source: "csrc/urcu_peer.c",
        link: true,
        skipped_var: "KSYNC_URCU_SKIPPED",
    },
    Peer {
        cfg: "ksync_ck",
        module: "ck",
        package: "libck-dev",
        source: "csrc/ck_peer.c",
        link: false,
        skipped_var: "KSYNC_CK_SKIPPED",
    },
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=csrc");
    println!("cargo::rerun-if-env-changed=KSYNC_NO_C_PEERS");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    let off = env::var_os("KSYNC_NO_C_PEERS").is_some_and(|v| !v.is_empty() && v != "0");
    watch_pkg_config_dirs();
    for peer in &PEERS {
        println!("cargo::rustc-check-cfg=cfg({})", peer.cfg);
        let outcome = if off {
            Err("KSYNC_NO_C_PEERS is set".to_string())
        } else {
            build(peer)
        };
        match outcome {
            Ok(()) => println!("cargo::rustc-cfg={}", peer.cfg),
            Err(why) => {
                println!("cargo::rustc-env={}={why}", peer.skipped_var);
                if !off {
                    println!(
                        "cargo::warning=ksync bench: {} rows skipped ({why}); install {} and pkg-config to build them",
                        peer.module, peer.package
                    );
                }
            }
        }
    }
}

/// Probes `peer`'s library and compiles its shim; the reason on failure.
fn build(peer: &Peer) -> Result<(), String> {
    let lib = pkg_config::Config::new()
        .cargo_metadata(false)
        .env_metadata(true)
        .probe(peer.module)
        .map_err(|e| match e {
            pkg_config::Error::Command { cause, .. } => format!("cannot run pkg-config: {cause}"),
            pkg_config::Error::EnvNoPkgConfig(var) => format!("{var} is set"),
            _ => format!("pkg-config finds no {}", peer.module),
        })?;
    let mut cc = cc::Build::new();
    cc.file(peer.source)
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-std=gnu11");
    for dir in &lib.include_paths {
        cc.include(dir);
    }
    for (name, value) in &lib.defines {
        cc.define(name, value.as_deref());
    }
    let name = peer
        .source
        .trim_start_matches("csrc/")
        .trim_end_matches(".c");
    cc.try_compile(&format!("ksync_{name}"))
        .map_err(|e| format!("the C compiler failed on {}: {e}", peer.source))?;
    if peer.link {
        for dir in &lib.link_paths {
            println!("cargo::rustc-link-search=native={}", dir.display());
        }
        for l in &lib.libs {
            println!("cargo::rustc-link-lib={l}");
        }
    }
    Ok(())
}

/// Asks cargo to run this script again when a directory that pkg-config
/// searches changes (a `-dev` package installed or removed adds or drops a
/// `.pc` file there), so installing the packages and rebuilding adds the rows.
fn watch_pkg_config_dirs() {
    let Ok(out) = std::process::Command::new("pkg-config")
        .args(["--variable", "pc_path", "pkg-config"])
        .output()
    else {
        return;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let extra = env::var("PKG_CONFIG_PATH").unwrap_or_default();
    for dir in path.split(':').chain(extra.split(':')) {
        // Only directories that exist: cargo reruns the script on every build
        // for a watched path that does not.
        if !dir.is_empty() && std::path::Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
}
