//! The Dockerfiles build what the workspace has (no Docker engine here, so
//! they are read, not built): the build stage copies every workspace
//! member's directory before `cargo build` (cargo needs every member's
//! manifest), `-p` names a workspace package, `--bin` one of its binaries,
//! and the binary copied out of `target/.../release/` and the ENTRYPOINT are
//! that package's binary.
//!
//! The workspace comes from `cargo metadata --no-deps`; the checks are
//! [`problems`], which the tests below also feed broken Dockerfiles.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use harness::deploy::repo_root;
use serde_json::Value;

/// One workspace member: its package name, its directory relative to the
/// workspace root, and its binary targets.
#[derive(Debug)]
struct Member {
    name: String,
    dir: String,
    bins: Vec<String>,
}

fn workspace() -> &'static [Member] {
    static WORKSPACE: OnceLock<Vec<Member>> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
            .arg(repo_root().join("Cargo.toml"))
            .output()
            .expect("cargo metadata runs");
        assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let root = Path::new(metadata["workspace_root"].as_str().expect("a workspace root"));
        let members: Vec<&str> = metadata["workspace_members"]
            .as_array()
            .expect("workspace members")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let packages = metadata["packages"].as_array().expect("packages");
        let workspace: Vec<Member> = packages
            .iter()
            .filter(|package| members.contains(&package["id"].as_str().unwrap_or_default()))
            .map(|package| {
                let manifest = Path::new(package["manifest_path"].as_str().expect("a manifest path"));
                let dir =
                    manifest.parent().and_then(|dir| dir.strip_prefix(root).ok()).expect("a member below the root");
                let bins = package["targets"]
                    .as_array()
                    .expect("targets")
                    .iter()
                    .filter(|target| target["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin")))
                    .map(|target| target["name"].as_str().expect("a target name").to_string())
                    .collect();
                Member {
                    name: package["name"].as_str().expect("a package name").to_string(),
                    dir: dir.to_string_lossy().into_owned(),
                    bins,
                }
            })
            .collect();
        assert_eq!(workspace.len(), members.len(), "every workspace member is a package of the metadata");
        workspace
    })
}

/// A Dockerfile's instructions: continuation lines joined, comments and
/// blank lines dropped; (keyword in upper case, the rest).
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    instructions
}

/// What is wrong with a Dockerfile that builds one binary of the workspace;
/// empty when nothing is.
fn problems(dockerfile: &str, workspace: &[Member]) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = instructions(dockerfile);
    let builds: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (keyword, rest))| keyword == "RUN" && rest.contains("cargo build"))
        .map(|(at, _)| at)
        .collect();
    let [build] = builds[..] else {
        return vec![format!("expected one RUN with `cargo build`, found {}", builds.len())];
    };
    let stage_start = instructions[..build].iter().rposition(|(keyword, _)| keyword == "FROM").unwrap_or(0);

    // Every member's directory (and the root manifest and lock file) is copied in before the build.
    let copied: Vec<&str> = instructions[stage_start..build]
        .iter()
        .filter(|(keyword, _)| keyword == "COPY" || keyword == "ADD")
        .flat_map(|(_, rest)| {
            let words: Vec<&str> = rest.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            let sources = words.len().saturating_sub(1);
            words.into_iter().take(sources)
        })
        .map(|source| source.trim_start_matches("./").trim_end_matches('/'))
        .collect();
    let copies = |path: &str| copied.iter().any(|source| *source == path || *source == "." || source.is_empty());
    for file in ["Cargo.toml", "Cargo.lock"] {
        if !copies(file) {
            problems.push(format!("{file} is not copied before `cargo build`"));
        }
    }
    for member in workspace {
        if !copies(&member.dir) {
            problems.push(format!(
                "workspace member {} ({}) is not copied before `cargo build` (cargo needs every member's manifest)",
                member.dir, member.name
            ));
        }
    }

    // -p and --bin name a package of the workspace and one of its binaries.
    let command = &instructions[build].1;
    let words: Vec<&str> = command.split_whitespace().collect();
    let values = |flags: &[&str]| -> Vec<String> {
        let mut values = Vec::new();
        for (at, word) in words.iter().enumerate() {
            if flags.contains(word) {
                values.extend(words.get(at + 1).map(|value| value.to_string()));
            } else if let Some((flag, value)) = word.split_once('=')
                && flags.contains(&flag)
            {
                values.push(value.to_string());
            }
        }
        values
    };
    let packages = values(&["-p", "--package"]);
    if packages.is_empty() {
        problems.push("`cargo build` names no package (-p)".to_string());
    }
    let mut bins: Vec<&str> = Vec::new();
    for package in &packages {
        match workspace.iter().find(|member| &member.name == package) {
            Some(member) => bins.extend(member.bins.iter().map(String::as_str)),
            None => problems.push(format!("-p {package} is not a workspace package")),
        }
    }
    for bin in values(&["--bin"]) {
        if !bins.contains(&bin.as_str()) {
            problems.push(format!("--bin {bin} is not a binary of {packages:?}"));
        }
    }

    // The binary copied out of target/ is one the build made.
    let built: Vec<&str> = words
        .iter()
        .filter(|word| word.starts_with("target/") && word.contains("/release/"))
        .map(|path| path.rsplit('/').next().unwrap_or_default())
        .collect();
    if built.is_empty() {
        problems.push("nothing is copied out of target/.../release/".to_string());
    }
    for name in &built {
        if !bins.contains(name) {
            problems.push(format!("target/.../release/{name} is not a binary of {packages:?}"));
        }
    }

    // The ENTRYPOINT runs it.
    let entrypoint = instructions.iter().rev().find(|(keyword, _)| keyword == "ENTRYPOINT").map(|(_, rest)| rest);
    match entrypoint.and_then(|rest| serde_json::from_str::<Vec<String>>(rest).ok()) {
        Some(argv) if !argv.is_empty() => {
            let program = argv[0].rsplit('/').next().unwrap_or_default();
            if !bins.contains(&program) {
                problems.push(format!("ENTRYPOINT runs {}, not a binary of {packages:?}", argv[0]));
            }
            if !built.contains(&program) {
                problems.push(format!("ENTRYPOINT runs {}, but the build copies out {built:?}", argv[0]));
            }
        }
        _ => problems.push(format!("no ENTRYPOINT in exec form (a JSON array): {entrypoint:?}")),
    }
    problems
}

fn dockerfile(name: &str) -> String {
    let path = repo_root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[test]
fn the_workspace_has_the_members_the_dockerfiles_build() {
    let names: Vec<&str> = workspace().iter().map(|member| member.name.as_str()).collect();
    for package in ["restore-agent", "kubegres-restore-operator"] {
        assert!(names.contains(&package), "{package} is not in the workspace: {names:?}");
    }
}

#[test]
fn the_dockerfiles_build_a_binary_of_the_workspace() {
    for name in ["Dockerfile.agent", "Dockerfile.operator"] {
        let problems = problems(&dockerfile(name), workspace());
        assert!(problems.is_empty(), "{name}:\n  {}", problems.join("\n  "));
    }
}

/// The checks catch each mistake they are there for, in a copy of
/// Dockerfile.agent with one line changed.
#[test]
fn a_broken_dockerfile_is_reported() {
    let good = dockerfile("Dockerfile.agent");
    let cases: [(&str, &str, &str, &str); 5] = [
        ("COPY operator operator\n", "", "workspace member operator", "a member left out"),
        ("-p restore-agent", "-p restore_agent", "-p restore_agent is not a workspace package", "a wrong package"),
        ("-p restore-agent", "-p restore-agent --bin agent", "--bin agent is not a binary", "a wrong binary"),
        ("target/release/restore-agent", "target/release/agent", "release/agent is not a binary", "a wrong path"),
        (
            r#"ENTRYPOINT ["/usr/local/bin/restore-agent"]"#,
            r#"ENTRYPOINT ["/usr/local/bin/agent"]"#,
            "ENTRYPOINT runs",
            "a wrong entrypoint",
        ),
    ];
    for (from, to, expected, what) in cases {
        assert!(good.contains(from), "Dockerfile.agent has no {from:?}: update this test");
        let broken = good.replacen(from, to, 1);
        let problems = problems(&broken, workspace());
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "{what}: expected a problem with {expected:?}, got {problems:?}"
        );
    }
}
