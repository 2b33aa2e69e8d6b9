//! What the local stack runs, read from template.yaml: each function's binary, settings,
//! environment (intrinsics resolved to local names, URLs and ARNs) and event sources.
//!
//! Anything the local stack cannot honour is an error naming the resource and the property:
//! silently skipping an event source would make the local system differ from the deployed one.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_norway::Value;

use crate::template::{scalar, Template, LOCAL_ACCOUNT, LOCAL_REGION};

/// Where the local stack's AWS names point.
#[derive(Debug, Clone)]
pub struct Locals {
    /// The emulator's endpoint (queue URLs are built on it).
    pub endpoint: String,
    /// Values for variables the template fills from Secrets Manager
    /// (`{{resolve:secretsmanager:${Parameter}}}`), by the template parameter naming the secret.
    pub secrets: BTreeMap<String, String>,
    /// Parameter values that override the template's defaults.
    pub parameters: BTreeMap<String, String>,
    /// The local gateway's base URL: what an HttpApi's execute-api URL means locally.
    pub gateway_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    /// The queue's local name (its logical id after the stack's prefix).
    pub queue: String,
    pub batch_size: u32,
    pub window: Duration,
    pub max_concurrency: u32,
    pub report_failures: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSource {
    /// The event's name in the template.
    pub name: String,
    /// `rate(...)` or `cron(...)`.
    pub expression: String,
    /// ScheduleV2's Input (JSON text), passed to the function as it is.
    pub input: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The logical id, e.g. `WebhookStripeFunction`.
    pub id: String,
    /// The cargo binary, from `Metadata.BuildProperties.Binary`.
    pub binary: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub environment: Vec<(String, String)>,
    pub http: Vec<HttpRoute>,
    pub sqs: Vec<SqsSource>,
    pub schedules: Vec<ScheduleSource>,
}

/// Lambda's default when a SQS event source sets no ScalingConfig is far above what a laptop
/// needs; locally it is capped here.
const DEFAULT_LOCAL_CONCURRENCY: u32 = 5;

/// The URL of the queue named `queue` (its local name) in the emulator.
pub fn queue_url(locals: &Locals, queue: &str) -> String {
    format!(
        "{}/{LOCAL_ACCOUNT}/{queue}",
        locals.endpoint.trim_end_matches('/')
    )
}

pub fn queue_arn(queue: &str) -> String {
    format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{queue}")
}

struct Resolver<'a> {
    template: &'a Template,
    locals: &'a Locals,
}

impl Resolver<'_> {
    fn parameter(&self, name: &str) -> Option<String> {
        self.locals
            .parameters
            .get(name)
            .cloned()
            .or_else(|| self.template.parameter_default(name))
    }

    /// `Ref` of a parameter, a pseudo parameter or a resource, as CloudFormation returns it.
    fn reference(&self, name: &str) -> anyhow::Result<String> {
        match name {
            "AWS::Region" => return Ok(LOCAL_REGION.to_owned()),
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT.to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            "AWS::StackName" => return Ok("inlet-local".to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            _ => {}
        }
        if let Some(value) = self.parameter(name) {
            return Ok(value);
        }
        if self
            .template
            .document
            .get("Parameters")
            .and_then(|p| p.get(name))
            .is_some()
        {
            // A secret ARN parameter has no default: only a dynamic reference may use it.
            return Ok(format!("${{{name}}}"));
        }
        match self.template.resources.get(name).map(|r| r.kind.as_str()) {
            Some("AWS::SQS::Queue") => Ok(queue_url(self.locals, &self.template.local_name(name))),
            Some("AWS::DynamoDB::Table") => Ok(self.template.local_name(name)),
            Some("AWS::S3::Bucket") => Ok(self.template.local_bucket_name(name)),
            // A topic's Ref is its ARN.
            Some("AWS::SNS::Topic") => self.template.local_arn(name),
            Some("AWS::Serverless::HttpApi") => Ok("local".to_owned()),
            Some(kind) => bail!("Ref {name}: resources of type {kind} have no local value"),
            None => bail!("Ref {name}: no such parameter or resource"),
        }
    }

    fn attribute(&self, target: &str) -> anyhow::Result<String> {
        match target.split_once('.') {
            Some((id, "Arn")) => self.template.local_arn(id),
            Some((id, "QueueName")) if self.is_queue(id) => Ok(self.template.local_name(id)),
            Some((id, "QueueUrl")) if self.is_queue(id) => {
                Ok(queue_url(self.locals, &self.template.local_name(id)))
            }
            _ => bail!("GetAtt {target} is not supported locally"),
        }
    }

    fn is_queue(&self, id: &str) -> bool {
        self.template
            .resources
            .get(id)
            .is_some_and(|r| r.kind == "AWS::SQS::Queue")
    }

    /// `Fn::Sub` with `${Name}` and `${Resource.Attribute}`.
    fn substitute(&self, text: &str) -> anyhow::Result<String> {
        // An HttpApi's public URL is the local gateway.
        let api = text
            .strip_prefix("https://${")
            .and_then(|r| r.strip_suffix("}.execute-api.${AWS::Region}.${AWS::URLSuffix}"));
        if let Some(api) = api {
            if self
                .template
                .resources
                .get(api)
                .is_some_and(|r| r.kind == "AWS::Serverless::HttpApi")
            {
                return Ok(self.locals.gateway_url.clone());
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("Sub {text:?}: unclosed ${{"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if name.contains('.') {
                out.push_str(&self.attribute(name)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A scalar property with its intrinsics resolved.
    fn value(&self, value: &Value) -> anyhow::Result<String> {
        if let Some(text) = scalar(value) {
            return Ok(text);
        }
        match value {
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let tag = tag.trim_start_matches('!');
                match (tag, &tagged.value) {
                    ("Ref", Value::String(name)) => self.reference(name),
                    ("GetAtt", Value::String(target)) => self.attribute(target),
                    ("Sub", Value::String(text)) => self.substitute(text),
                    _ => bail!("the intrinsic !{tag} is not supported locally"),
                }
            }
            Value::Mapping(map) if map.len() == 1 => {
                let (key, inner) = map.iter().next().ok_or_else(|| anyhow!("empty mapping"))?;
                match (key.as_str(), inner) {
                    (Some("Ref"), Value::String(name)) => self.reference(name),
                    (Some("Fn::Sub"), Value::String(text)) => self.substitute(text),
                    (Some("Fn::GetAtt"), Value::Sequence(parts)) => {
                        let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                        self.attribute(&parts.join("."))
                    }
                    (Some(other), _) => bail!("the intrinsic {other} is not supported locally"),
                    (None, _) => bail!("a mapping is not a value"),
                }
            }
            _ => bail!("a list or mapping is not a value"),
        }
    }
}

/// The parameter of `{{resolve:secretsmanager:${Parameter}}}` (what the deployed stack reads
/// from Secrets Manager), or `""` for a reference that names no parameter.
fn secret_parameter(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("{{resolve:secretsmanager:")?;
    Some(
        rest.strip_prefix("${")
            .and_then(|r| r.split_once('}'))
            .map_or("", |(parameter, _)| parameter),
    )
}

fn variables(value: Option<&Value>) -> impl Iterator<Item = (&Value, &Value)> {
    value
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
}

fn number(value: Option<&Value>, what: &str, default: u64) -> anyhow::Result<u64> {
    match value {
        None => Ok(default),
        Some(v) => scalar(v)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("{what} must be a number")),
    }
}

fn event_sources(
    resolver: &Resolver<'_>,
    id: &str,
    events: Option<&Value>,
    spec: &mut FunctionSpec,
) -> anyhow::Result<()> {
    let Some(events) = events.and_then(Value::as_mapping) else {
        return Ok(());
    };
    for (name, event) in events {
        let name = name.as_str().unwrap_or_default();
        let kind = event
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let properties = event.get("Properties");
        let property = |p: &str| properties.and_then(|props| props.get(p));
        let context = |p: &str| format!("{id}.Events.{name}.Properties.{p}");
        match kind {
            "HttpApi" => {
                let method = property("Method")
                    .and_then(scalar)
                    .unwrap_or_else(|| "ANY".into());
                let path = property("Path")
                    .and_then(scalar)
                    .ok_or_else(|| anyhow!("{} is required locally", context("Path")))?;
                spec.http.push(HttpRoute {
                    method: method.to_uppercase(),
                    path,
                });
            }
            "SQS" => {
                let queue_arn = property("Queue")
                    .ok_or_else(|| anyhow!("{} is required", context("Queue")))
                    .and_then(|q| resolver.value(q).with_context(|| context("Queue")))?;
                let queue = queue_arn
                    .rsplit(':')
                    .next()
                    .filter(|q| {
                        q.strip_prefix(resolver.template.prefix.as_str())
                            .is_some_and(|id| resolver.is_queue(id))
                    })
                    .ok_or_else(|| {
                        anyhow!("{}: {queue_arn} is not a queue of this template", context("Queue"))
                    })?
                    .to_owned();
                let batch_size = number(property("BatchSize"), &context("BatchSize"), 10)?;
                let window = number(
                    property("MaximumBatchingWindowInSeconds"),
                    &context("MaximumBatchingWindowInSeconds"),
                    0,
                )?;
                // Lambda's limits for a standard queue.
                if !(1..=10_000).contains(&batch_size) {
                    bail!("{}: 1 to 10000", context("BatchSize"));
                }
                if batch_size > 10 && window < 1 {
                    bail!(
                        "{}: above 10 needs MaximumBatchingWindowInSeconds of at least 1",
                        context("BatchSize")
                    );
                }
                let max_concurrency = number(
                    property("ScalingConfig").and_then(|s| s.get("MaximumConcurrency")),
                    &context("ScalingConfig.MaximumConcurrency"),
                    u64::from(DEFAULT_LOCAL_CONCURRENCY),
                )?;
                let report_failures = property("FunctionResponseTypes")
                    .and_then(Value::as_sequence)
                    .is_some_and(|types| {
                        types
                            .iter()
                            .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                    });
                spec.sqs.push(SqsSource {
                    queue,
                    batch_size: batch_size as u32,
                    window: Duration::from_secs(window),
                    max_concurrency: u32::try_from(max_concurrency.clamp(1, 100)).unwrap_or(1),
                    report_failures,
                });
            }
            "Schedule" | "ScheduleV2" => {
                let expression = property("Schedule")
                    .or_else(|| property("ScheduleExpression"))
                    .and_then(scalar)
                    .ok_or_else(|| anyhow!("{} is required", context("Schedule")))?;
                super::schedule::Schedule::parse(&expression)
                    .with_context(|| context("Schedule"))?;
                let enabled = match (property("Enabled"), property("State")) {
                    (Some(Value::Bool(false)), _) => false,
                    (_, Some(state)) => scalar(state).as_deref() != Some("DISABLED"),
                    _ => true,
                };
                let input = property("Input").and_then(scalar);
                if let Some(input) = &input {
                    serde_json::from_str::<serde_json::Value>(input)
                        .with_context(|| format!("{} is not JSON", context("Input")))?;
                }
                spec.schedules.push(ScheduleSource {
                    name: name.to_owned(),
                    expression,
                    input,
                    enabled,
                });
            }
            other => bail!("{id}.Events.{name}: event type {other:?} is not supported locally (HttpApi, SQS, Schedule, ScheduleV2 are)"),
        }
    }
    Ok(())
}

/// Every function of the template, ready to run locally.
pub fn functions(template: &Template, locals: &Locals) -> anyhow::Result<Vec<FunctionSpec>> {
    let resolver = Resolver { template, locals };
    let globals = template
        .document
        .get("Globals")
        .and_then(|g| g.get("Function"));
    let mut specs = Vec::new();
    for (id, resource) in template.of_kind("AWS::Serverless::Function") {
        let body = template
            .document
            .get("Resources")
            .and_then(|r| r.get(id.as_str()));
        let binary = body
            .and_then(|b| b.get("Metadata"))
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|p| p.get("Binary"))
            .and_then(scalar)
            .ok_or_else(|| anyhow!("{id}.Metadata.BuildProperties.Binary names no binary"))?;
        let timeout = number(
            template.function_property(id, "Timeout").as_ref(),
            &format!("{id}.Timeout"),
            3,
        )?;
        let memory_mb = number(
            template.function_property(id, "MemorySize").as_ref(),
            &format!("{id}.MemorySize"),
            128,
        )?;
        let mut environment = BTreeMap::new();
        let own = resource.properties.get("Environment");
        for (name, value) in
            variables(globals.and_then(|g| g.get("Environment"))).chain(variables(own))
        {
            let name = name
                .as_str()
                .ok_or_else(|| anyhow!("{id}.Environment: a variable name is not text"))?;
            let resolved = resolver
                .value(value)
                .with_context(|| format!("{id}.Environment.Variables.{name}"))?;
            let resolved = if let Some(parameter) = secret_parameter(&resolved) {
                let variable = super::LOCAL_SECRETS
                    .iter()
                    .find(|(p, _)| *p == parameter)
                    .map_or(name, |(_, variable)| *variable);
                locals.secrets.get(parameter).cloned().ok_or_else(|| {
                    anyhow!("{id}.Environment.Variables.{name} comes from Secrets Manager ({parameter}) when deployed; locally set {variable} (make services writes it to .local/env)")
                })?
            } else {
                resolved
            };
            environment.insert(name.to_owned(), resolved);
        }
        let mut spec = FunctionSpec {
            id: id.clone(),
            binary,
            timeout: Duration::from_secs(timeout.clamp(1, 900)),
            memory_mb: u32::try_from(memory_mb).unwrap_or(128),
            environment: environment.into_iter().collect(),
            http: Vec::new(),
            sqs: Vec::new(),
            schedules: Vec::new(),
        };
        event_sources(&resolver, id, resource.properties.get("Events"), &mut spec)?;
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests;
