//! `cargo run -p gateway-codegen [-- --check] [--root DIR]`
//!
//! Without `--check`, rewrites every generated file from `catalog/`. With `--check`, writes
//! nothing and exits 1 when a generated file is stale (CI runs this).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage("--root needs a directory"),
            },
            "-h" | "--help" => {
                println!("usage: codegen [--check] [--root DIR]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }

    let catalog = match gateway_codegen::load::load_dir(&root.join("catalog")) {
        Ok(c) => c,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let files = gateway_codegen::generate(&catalog);
    let stale = gateway_codegen::stale_files(&root, &files);
    if check {
        if stale.is_empty() {
            println!(
                "generated code is fresh: {} entities, {} enums, {} files",
                catalog.entities.len(),
                catalog.enums.len(),
                files.len()
            );
            return ExitCode::SUCCESS;
        }
        eprintln!("generated files are stale; run `cargo run -p gateway-codegen`:");
        for path in stale {
            eprintln!("  {}", path.display());
        }
        return ExitCode::FAILURE;
    }
    for orphan in gateway_codegen::orphans(&root, &files) {
        if let Err(e) = std::fs::remove_file(root.join(&orphan)) {
            eprintln!("cannot remove {}: {e}", orphan.display());
            return ExitCode::FAILURE;
        }
    }
    for (path, text) in &files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                eprintln!("cannot create {}: {e}", parent.display());
                return ExitCode::FAILURE;
            }
        }
        if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
            if let Err(e) = std::fs::write(&full, text) {
                eprintln!("cannot write {}: {e}", full.display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "generated {} files from {} entities and {} enums ({} changed)",
        files.len(),
        catalog.entities.len(),
        catalog.enums.len(),
        stale.len()
    );
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("{msg}\nusage: codegen [--check] [--root DIR]");
    ExitCode::from(2)
}
