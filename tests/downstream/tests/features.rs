//! No crate of the workspace enables the serde_json features that change serde_json for
//! every crate of a build (Cargo unifies features): `preserve_order` (every `Map` keeps
//! insertion order) and `arbitrary_precision` (numbers reach untagged, internally tagged and
//! flattened types as maps). Checked on the manifests, through `cargo metadata`: dependencies,
//! dev-dependencies and build-dependencies, and features that forward to serde_json's.

use std::process::Command;

use serde_json::Value;

const FORBIDDEN: &[&str] = &["preserve_order", "arbitrary_precision"];

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .args(["--manifest-path", root])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every way a workspace crate's manifest enables a forbidden serde_json feature, as
/// `crate: how`.
fn forbidden_features(metadata: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().unwrap_or("?");
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            if dependency["name"] != "serde_json" {
                continue;
            }
            for feature in dependency["features"].as_array().expect("features") {
                if FORBIDDEN.iter().any(|f| feature == f) {
                    let kind = dependency["kind"].as_str().unwrap_or("normal");
                    found.push(format!("{name}: {kind} dependency with {feature}"));
                }
            }
        }
        let features = package["features"].as_object().expect("features");
        for (feature, enables) in features {
            for enabled in enables.as_array().expect("a feature's list") {
                let enabled = enabled.as_str().unwrap_or("");
                let forwards = enabled.split_once('/').is_some_and(|(krate, f)| {
                    krate.trim_end_matches('?') == "serde_json" && FORBIDDEN.contains(&f)
                });
                if forwards {
                    found.push(format!("{name}: feature {feature} enables {enabled}"));
                }
            }
        }
    }
    found
}

#[test]
fn no_workspace_crate_enables_serde_json_s_order_or_precision_features() {
    let metadata = workspace_metadata();
    let members = metadata["workspace_members"].as_array().expect("members");
    assert!(members.len() >= 6, "the whole workspace: {members:?}");
    let found = forbidden_features(&metadata);
    assert!(
        found.is_empty(),
        "serde_json features that change it for every user: {found:#?}"
    );
}

#[test]
fn the_check_sees_a_forbidden_feature_where_a_manifest_has_one() {
    let metadata = serde_json::json!({"packages": [{
        "name": "leaky",
        "dependencies": [
            {"name": "serde_json", "kind": "dev", "features": ["arbitrary_precision"]},
            {"name": "serde", "kind": null, "features": ["preserve_order"]},
        ],
        "features": {"ordered": ["serde_json?/preserve_order"], "other": ["serde/std"]},
    }]});
    assert_eq!(
        forbidden_features(&metadata),
        [
            "leaky: dev dependency with \"arbitrary_precision\"",
            "leaky: feature ordered enables serde_json?/preserve_order"
        ]
    );
}
