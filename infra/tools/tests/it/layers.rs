//! The layering the compiler cannot see on its own, read from `cargo metadata`: each crate
//! depends only on layers below it; the webhooks and domain layers reach no AWS SDK, Lambda
//! runtime or HTTP client; no deployed binary and not the `inlet` CLI is built with test code.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Every workspace package and its layer: a package may depend (normally) only on packages of
/// a lower layer. Packages of one layer do not know each other.
const LAYERS: [(&str, u8); 9] = [
    ("inlet-core", 0),
    ("inlet-webhooks", 1),
    ("inlet-postgres", 1),
    ("inlet-domain", 2),
    ("inlet-adapters", 3),
    ("inlet-lambda", 4),
    ("inlet-testing", 4),
    ("inlet-infra", 5),
    ("inlet-tools", 6),
];

/// The functions (`functions/*`) sit on the wiring.
const FUNCTION_LAYER: u8 = 5;

/// What a layer must not reach, even through other crates: (package, name prefixes).
const FORBIDDEN: [(&str, &[&str]); 3] = [
    (
        "inlet-core",
        &[
            "tokio", "aws-", "aws_", "lambda_", "reqwest", "hyper", "postgres",
        ],
    ),
    (
        "inlet-webhooks",
        &[
            "tokio", "aws-", "aws_", "lambda_", "reqwest", "hyper", "postgres",
        ],
    ),
    (
        "inlet-domain",
        &["aws-", "aws_", "lambda_", "reqwest", "hyper"],
    ),
];

/// Packages that exist for tests and benchmarks only.
const TEST_ONLY_PACKAGES: [&str; 2] = ["inlet-testing", "inlet-tools"];

/// Feature names that switch test code on.
fn is_test_feature(feature: &str) -> bool {
    matches!(
        feature,
        "testing" | "test-util" | "test-utils" | "mocks" | "test"
    )
}

/// The resolved dependency graph: package name -> names of its normal dependencies.
pub(crate) struct Graph {
    pub(crate) normal: BTreeMap<String, BTreeSet<String>>,
    pub(crate) workspace: BTreeSet<String>,
}

impl Graph {
    pub(crate) fn from_metadata(metadata: &Value) -> Graph {
        let name_of = |id: &str| {
            metadata["packages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["id"] == id)
                .and_then(|p| p["name"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut normal = BTreeMap::new();
        for node in metadata["resolve"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = name_of(node["id"].as_str().unwrap_or_default());
            let deps = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|kind| kind["kind"].is_null())
                })
                .map(|dep| name_of(dep["pkg"].as_str().unwrap_or_default()))
                .collect();
            normal.insert(name, deps);
        }
        let workspace = metadata["workspace_members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|id| name_of(id.as_str().unwrap_or_default()))
            .collect();
        Graph { normal, workspace }
    }

    /// Every package `package` reaches through normal dependencies (itself excluded).
    pub(crate) fn closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![package.to_owned()];
        while let Some(next) = stack.pop() {
            for dep in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen
    }
}

fn layer(package: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == package)
        .map(|(_, layer)| *layer)
        .or_else(|| package_is_function(package).then_some(FUNCTION_LAYER))
}

fn package_is_function(package: &str) -> bool {
    crate::root().join("functions").join(package).is_dir()
}

/// Every way the graph breaks the layering, as sentences.
pub(crate) fn layering_violations(graph: &Graph) -> Vec<String> {
    let mut violations = Vec::new();
    for package in &graph.workspace {
        let Some(own) = layer(package) else {
            violations.push(format!(
                "{package} has no layer: add it to LAYERS in infra/tools/tests/it/layers.rs and docs/ARCHITECTURE.md"
            ));
            continue;
        };
        for dep in graph.normal.get(package).into_iter().flatten() {
            if !graph.workspace.contains(dep) {
                continue;
            }
            match layer(dep) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => violations.push(format!(
                    "{package} (layer {own}) depends on {dep} (layer {theirs}): only layers below may be used"
                )),
                None => violations.push(format!("{package} depends on {dep}, which has no layer")),
            }
        }
    }
    for (package, prefixes) in FORBIDDEN {
        for reached in graph.closure(package) {
            if prefixes.iter().any(|p| reached.starts_with(p)) {
                violations.push(format!(
                    "{package} reaches {reached}, which its layer must not use (see docs/ARCHITECTURE.md)"
                ));
            }
        }
    }
    violations
}

/// The packages whose binaries are deployed or handed to operators.
fn shipped_packages(graph: &Graph) -> Vec<String> {
    graph
        .workspace
        .iter()
        .filter(|p| package_is_function(p) || *p == "inlet-infra")
        .cloned()
        .collect()
}

fn metadata() -> Value {
    serde_json::from_str(&crate::cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--locked",
    ]))
    .expect("cargo metadata prints JSON")
}

#[test]
fn every_crate_depends_only_on_layers_below_it_and_forbidden_crates_stay_out() {
    let graph = Graph::from_metadata(&metadata());
    assert!(
        graph.workspace.len() >= LAYERS.len(),
        "the workspace's packages were not found"
    );
    let violations = layering_violations(&graph);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_checker_names_a_layer_violation_and_a_forbidden_crate() {
    // The real graph, plus a domain that uses the wiring and an SDK: both must be named.
    let mut graph = Graph::from_metadata(&metadata());
    let domain = graph.normal.entry("inlet-domain".into()).or_default();
    domain.insert("inlet-lambda".into());
    domain.insert("aws-sdk-sqs".into());
    let violations = layering_violations(&graph);
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("inlet-domain (layer 2) depends on inlet-lambda (layer 4)")),
        "{violations:#?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("inlet-domain reaches aws-sdk-sqs")),
        "{violations:#?}"
    );
}

/// Test-only features our own manifests switch on in normal (non-dev) dependencies:
/// (package, dependency, feature). Features upstream crates enable among themselves are
/// theirs (aws-config turns on aws-credential-types/test-util for every user).
fn test_features_requested(metadata: &Value) -> Vec<(String, String, String)> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut found = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if !members.contains(package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let name = package["name"].as_str().unwrap_or_default();
        for (feature, _) in package["features"].as_object().into_iter().flatten() {
            if is_test_feature(feature) {
                found.push((name.to_owned(), name.to_owned(), feature.clone()));
            }
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if !dep["kind"].is_null() {
                continue;
            }
            for feature in dep["features"].as_array().into_iter().flatten() {
                let feature = feature.as_str().unwrap_or_default();
                if is_test_feature(feature) {
                    found.push((
                        name.to_owned(),
                        dep["name"].as_str().unwrap_or_default().to_owned(),
                        feature.to_owned(),
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn no_function_or_cli_binary_is_built_with_test_code() {
    let metadata = metadata();
    let graph = Graph::from_metadata(&metadata);
    let shipped = shipped_packages(&graph);
    assert!(shipped.len() >= 12, "functions and the CLI: {shipped:?}");
    for package in &shipped {
        let closure = graph.closure(package);
        for test_only in TEST_ONLY_PACKAGES {
            assert!(
                !closure.contains(test_only),
                "{package} is built with {test_only}, which is test-only"
            );
        }
    }
    // `cargo build --workspace --bins` unifies features over every member's normal
    // dependencies, so a test-only feature requested anywhere (even by inlet-tools) would reach
    // every deployed binary: none may be requested.
    let requested = test_features_requested(&metadata);
    assert!(
        requested.is_empty(),
        "test-only features requested outside [dev-dependencies] (package, dependency, feature): {requested:#?}"
    );
}

#[test]
fn every_function_is_deployed_from_the_workspace_root_as_it_runs_locally() {
    // `sam build` runs `cargo lambda build --bin <Binary>` in each function's CodeUri. From the
    // workspace root, cargo resolves features over every member, exactly as the
    // `cargo build --workspace --bins` of `make test` and `inlet local` does (checked by hand
    // with `--unit-graph`: hyper gets the same features either way; `-p <function>` would not).
    // So the binary tested locally is the one deployed, provided every function builds from
    // the root and the unified graph carries no test code (the test above).
    let template: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(crate::root().join("template.yaml")).unwrap(),
    )
    .expect("template.yaml parses");
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut functions = 0;
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        functions += 1;
        let id = id.as_str().unwrap_or_default();
        assert_eq!(
            resource["Properties"]["CodeUri"].as_str(),
            Some("."),
            "{id}: CodeUri"
        );
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}: BuildMethod"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default();
        assert!(
            crate::root()
                .join("functions")
                .join(binary)
                .join("src/main.rs")
                .is_file(),
            "{id}: Binary {binary:?} is not a function in functions/"
        );
    }
    assert!(functions >= 11, "{functions} functions in template.yaml");
}
