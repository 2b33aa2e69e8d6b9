//! The provider table's checklist: adding a provider is its module (in inlet-webhooks), its
//! function folder, its template entry and its events sample. Everything else is derived from
//! `Provider::ALL`; this test names whatever a new provider still lacks.

use inlet_webhooks::intake::demo;
use inlet_webhooks::providers::Provider;

/// What a provider lacks, as sentences naming the file to add or change.
pub(crate) fn missing(provider: Provider, template: &str, readme: &str) -> Vec<String> {
    let root = crate::root();
    let name = provider.as_str();
    let function = format!("webhook-{name}");
    let mut missing = Vec::new();
    let main = root.join("functions").join(&function).join("src/main.rs");
    match std::fs::read_to_string(&main) {
        Err(_) => missing.push(format!(
            "functions/{function}/src/main.rs is missing: copy another webhook function's folder"
        )),
        Ok(text) => {
            let variant = format!("{provider:?}");
            if !text.contains(&format!("Provider::{variant}")) {
                missing.push(format!(
                    "functions/{function}/src/main.rs does not run Provider::{variant}"
                ));
            }
        }
    }
    let logical_id = format!("Webhook{}Function", capitalized(name));
    if !template.contains(&format!("  {logical_id}:")) {
        missing.push(format!("template.yaml has no {logical_id}"));
    }
    if !template.contains(&format!("Binary: {function}\n")) {
        missing.push(format!("template.yaml builds no binary {function}"));
    }
    if !template.contains(&format!("Path: /webhooks/{name}/{{source_id}}")) {
        missing.push(format!(
            "template.yaml has no route POST /webhooks/{name}/{{source_id}}"
        ));
    }
    if !root.join(format!("events/{function}.json")).is_file() {
        missing.push(format!(
            "events/{function}.json is missing: a signed sample for `sam local invoke`"
        ));
    }
    if !demo::demo_sources()
        .iter()
        .any(|s| s.provider == provider && s.source_id.as_str() == demo::demo_source_id(provider))
    {
        missing.push(format!("no demo source demo_{name}"));
    }
    if provider
        .check_secret(provider.demo_secret().expose())
        .is_err()
    {
        missing.push(format!(
            "the demo secret of {name} does not have its provider's shape"
        ));
    }
    if !readme.contains(&format!("`{name}`")) {
        missing.push(format!(
            "README.md's webhook intake section does not name `{name}`"
        ));
    }
    missing
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(crate::root().join(path)).unwrap_or_default()
}

#[test]
fn every_provider_has_its_function_route_sample_demo_source_and_docs() {
    let (template, readme) = (read("template.yaml"), read("README.md"));
    let missing: Vec<String> = Provider::ALL
        .into_iter()
        .flat_map(|p| missing(p, &template, &readme))
        .collect();
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn a_provider_without_its_route_and_sample_is_named() {
    // The template and README as they would be if the Slack entries were forgotten.
    let template = read("template.yaml").replace("WebhookSlackFunction", "Forgotten");
    let template = template.replace("/webhooks/slack/", "/forgotten/");
    let missing = missing(Provider::Slack, &template, "");
    assert!(
        missing.contains(&"template.yaml has no WebhookSlackFunction".to_owned()),
        "{missing:#?}"
    );
    assert!(
        missing.contains(&"template.yaml has no route POST /webhooks/slack/{source_id}".to_owned()),
        "{missing:#?}"
    );
    assert!(
        missing.iter().any(|m| m.contains("README.md")),
        "{missing:#?}"
    );
}

#[test]
fn every_function_folder_is_a_provider_or_a_known_function() {
    // A webhook function folder for a provider the table does not have is a leftover.
    for entry in std::fs::read_dir(crate::root().join("functions")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(provider) = name.strip_prefix("webhook-") {
            assert!(
                Provider::parse(provider).is_some(),
                "functions/{name} serves no provider of the table in inlet-webhooks"
            );
        }
    }
}
