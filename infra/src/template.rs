//! Reading template.yaml: the resources the local stack creates, with the intrinsics the
//! template uses resolved to local names, URLs and ARNs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_norway::Value;

/// The account and region moto reports; local ARNs use them.
pub const LOCAL_ACCOUNT: &str = "123456789012";
pub const LOCAL_REGION: &str = "us-east-1";

#[derive(Debug)]
pub struct Template {
    pub resources: BTreeMap<String, Resource>,
    /// The whole document, for sections the local stack reads as they are (Globals, Parameters).
    pub document: Value,
    /// Put before every local resource name, so two local stacks can share one emulator.
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: Value,
}

impl Template {
    pub fn load(path: &Path) -> anyhow::Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (run from the repository root, or give --template)",
                path.display()
            )
        })?;
        Self::parse(&text)
            .with_context(|| format!("{} is not a template Inlet can read", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let doc: Value = serde_norway::from_str(text)?;
        let mut resources = BTreeMap::new();
        let Some(map) = doc.get("Resources").and_then(Value::as_mapping) else {
            bail!("no Resources section");
        };
        for (id, body) in map {
            let id = id
                .as_str()
                .ok_or_else(|| anyhow!("a resource id is not a string"))?;
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("resource {id} has no Type"))?;
            let properties = body.get("Properties").cloned().unwrap_or(Value::Null);
            resources.insert(
                id.to_owned(),
                Resource {
                    kind: kind.to_owned(),
                    properties,
                },
            );
        }
        Ok(Template {
            resources,
            document: doc,
            prefix: String::new(),
        })
    }

    /// A parameter's default value, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.document
            .get("Parameters")?
            .get(name)?
            .get("Default")
            .and_then(scalar)
    }

    /// A function property, falling back to `Globals.Function`.
    pub fn function_property(&self, id: &str, property: &str) -> Option<Value> {
        self.resources
            .get(id)
            .and_then(|r| r.properties.get(property).cloned())
            .or_else(|| {
                self.document
                    .get("Globals")?
                    .get("Function")?
                    .get(property)
                    .cloned()
            })
    }

    pub fn of_kind<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Resource)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }

    /// A queue's or table's name in the emulator: its logical id, after the prefix.
    pub fn local_name(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// A bucket's name in the emulator: as S3 names them, lower case, no underscores.
    pub fn local_bucket_name(&self, id: &str) -> String {
        self.local_name(id).to_ascii_lowercase().replace('_', "-")
    }

    /// Every dead-letter queue and the queue it serves: (DLQ, source), by logical id.
    pub fn dead_letter_queues(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .of_kind("AWS::SQS::Queue")
            .filter_map(|(id, queue)| {
                let target = queue
                    .properties
                    .get("RedrivePolicy")?
                    .get("deadLetterTargetArn")?;
                let dlq = match target {
                    Value::Tagged(tagged) => tagged.value.as_str()?.strip_suffix(".Arn")?,
                    Value::Mapping(_) => {
                        target.get("Fn::GetAtt")?.as_sequence()?.first()?.as_str()?
                    }
                    _ => return None,
                };
                Some((dlq.to_owned(), id.clone()))
            })
            .collect();
        pairs.sort();
        pairs
    }

    /// The local ARN of a queue or table resource.
    pub fn local_arn(&self, id: &str) -> anyhow::Result<String> {
        let name = self.local_name(id);
        match self.resources.get(id).map(|r| r.kind.as_str()) {
            Some("AWS::SQS::Queue") => {
                Ok(format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{name}"))
            }
            Some("AWS::DynamoDB::Table") => Ok(format!(
                "arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{name}"
            )),
            Some("AWS::SNS::Topic") => {
                Ok(format!("arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{name}"))
            }
            Some(kind) => {
                bail!("GetAtt {id}.Arn: resources of type {kind} are not supported locally")
            }
            None => bail!("GetAtt {id}.Arn: no resource {id}"),
        }
    }

    /// Resolves `!GetAtt X.Arn` (the only intrinsic resource properties use today) in `value`
    /// of `resource`'s `property`; anything else is an error that names both.
    pub fn resolve_arn(
        &self,
        resource: &str,
        property: &str,
        value: &Value,
    ) -> anyhow::Result<String> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Tagged(tagged) if tagged.tag == "GetAtt" || tagged.tag == "!GetAtt" => {
                let target = tagged.value.as_str().unwrap_or_default();
                match target.split_once('.') {
                    Some((id, "Arn")) => self.local_arn(id),
                    _ => bail!("{resource}.{property}: GetAtt {target} is not supported locally (only X.Arn)"),
                }
            }
            Value::Mapping(map) if map.contains_key("Fn::GetAtt") => {
                let parts: Vec<&str> = map
                    .get("Fn::GetAtt")
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match parts.as_slice() {
                    [id, "Arn"] => self.local_arn(id),
                    _ => bail!("{resource}.{property}: Fn::GetAtt {parts:?} is not supported locally (only X.Arn)"),
                }
            }
            other => bail!(
                "{resource}.{property}: {} is not supported locally",
                describe(other)
            ),
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) => format!("the intrinsic {}", tagged.tag),
        Value::Mapping(map) => format!(
            "the value {}",
            map.keys()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "this value".to_owned(),
    }
}

/// A property as text: scalars only (numbers and booleans as CloudFormation writes them).
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_template_parses_and_resolves_its_dlq_arn() {
        let template =
            Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
                .unwrap();
        let queue = &template.resources["EventsQueue"];
        let redrive = queue.properties.get("RedrivePolicy").unwrap();
        let arn = template
            .resolve_arn(
                "EventsQueue",
                "RedrivePolicy",
                redrive.get("deadLetterTargetArn").unwrap(),
            )
            .unwrap();
        assert_eq!(arn, "arn:aws:sqs:us-east-1:123456789012:EventsDLQ");
        assert!(template.of_kind("AWS::DynamoDB::Table").count() >= 3);
    }

    #[test]
    fn the_dead_letter_queues_are_found_with_the_queues_they_serve() {
        assert_eq!(
            project_template().dead_letter_queues(),
            [
                ("EventsDLQ".to_owned(), "EventsQueue".to_owned()),
                ("ExportsDLQ".to_owned(), "ExportsQueue".to_owned()),
                ("RemindersDLQ".to_owned(), "RemindersQueue".to_owned())
            ]
        );
    }

    #[test]
    fn an_unsupported_intrinsic_is_an_error_naming_resource_and_property() {
        let template = Template::parse(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      RedrivePolicy:\n        deadLetterTargetArn: !ImportValue other-stack-dlq\n",
        )
        .unwrap();
        let value =
            template.resources["Q"].properties["RedrivePolicy"]["deadLetterTargetArn"].clone();
        let error = template
            .resolve_arn("Q", "RedrivePolicy.deadLetterTargetArn", &value)
            .unwrap_err();
        assert_eq!(error.to_string(), "Q.RedrivePolicy.deadLetterTargetArn: the intrinsic !ImportValue is not supported locally");
        let missing = Template::parse("Resources:\n  X:\n    Properties: {}\n").unwrap_err();
        assert_eq!(missing.to_string(), "resource X has no Type");
    }

    fn project_template() -> Template {
        Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap()
    }

    /// (function id, event) for every event of a type on every function.
    fn events_of<'a>(
        template: &'a Template,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        template
            .of_kind("AWS::Serverless::Function")
            .flat_map(move |(id, function)| {
                function
                    .properties
                    .get("Events")
                    .and_then(Value::as_mapping)
                    .into_iter()
                    .flat_map(|events| events.values())
                    .filter(move |event| event.get("Type").and_then(Value::as_str) == Some(kind))
                    .map(move |event| (id, event))
            })
    }

    #[test]
    fn queue_consumers_and_crons_fit_the_database_connection_budget() {
        let template = project_template();
        let budget: u64 = template
            .parameter_default("DbConnectionBudget")
            .unwrap()
            .parse()
            .unwrap();
        let mut used = 0;
        for (id, event) in events_of(&template, "SQS") {
            let concurrency = event["Properties"]
                .get("ScalingConfig")
                .and_then(|s| s.get("MaximumConcurrency"))
                .and_then(scalar);
            let concurrency: u64 = concurrency
                .unwrap_or_else(|| panic!("{id}: an SQS consumer must cap ScalingConfig.MaximumConcurrency (one connection each)"))
                .parse()
                .unwrap();
            used += concurrency;
        }
        for kind in ["Schedule", "ScheduleV2"] {
            for (id, _) in events_of(&template, kind) {
                let reserved = template
                    .function_property(id, "ReservedConcurrentExecutions")
                    .as_ref()
                    .and_then(scalar);
                used += reserved
                    .unwrap_or_else(|| panic!("{id}: a cron must set ReservedConcurrentExecutions"))
                    .parse::<u64>()
                    .unwrap();
            }
        }
        // Any other function that connects (an HTTP function such as track-click) must cap
        // itself with reserved concurrency too.
        for (id, resource) in template.of_kind("AWS::Serverless::Function") {
            let connects = resource
                .properties
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(|v| v.get("DATABASE_URL"))
                .is_some();
            let counted = ["SQS", "Schedule", "ScheduleV2"]
                .iter()
                .any(|kind| events_of(&template, kind).any(|(f, _)| f == id));
            if connects && !counted {
                let reserved = template
                    .function_property(id, "ReservedConcurrentExecutions")
                    .as_ref()
                    .and_then(scalar)
                    .unwrap_or_else(|| panic!("{id} connects to the database: it must set ReservedConcurrentExecutions"));
                used += reserved.parse::<u64>().unwrap();
            }
        }
        assert!(used >= 1, "at least one consumer holds connections");
        assert!(
            used <= budget,
            "consumers and crons may hold {used} connections; DbConnectionBudget is {budget}"
        );
    }

    #[test]
    fn every_consumed_queue_hides_messages_for_six_times_its_consumers_timeout() {
        let template = project_template();
        for (id, event) in events_of(&template, "SQS") {
            let queue = match &event["Properties"]["Queue"] {
                Value::Tagged(tagged) => tagged
                    .value
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches(".Arn")
                    .to_owned(),
                other => panic!("{id}: Queue should be !GetAtt X.Arn, found {other:?}"),
            };
            let visibility: u64 = template.resources[&queue]
                .properties
                .get("VisibilityTimeout")
                .and_then(scalar)
                .unwrap_or_else(|| "30".into())
                .parse()
                .unwrap();
            let timeout: u64 = template
                .function_property(id, "Timeout")
                .as_ref()
                .and_then(scalar)
                .unwrap_or_else(|| "3".into())
                .parse()
                .unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{queue}: VisibilityTimeout {visibility} s < 6 x {id}'s Timeout {timeout} s"
            );
        }
    }

    #[test]
    fn every_function_has_its_package_and_a_sample_event() {
        let template = project_template();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (id, _) in template.of_kind("AWS::Serverless::Function") {
            let name = binary_name(&template, id);
            assert!(
                root.join("functions")
                    .join(&name)
                    .join("Cargo.toml")
                    .exists(),
                "{id}: no functions/{name}"
            );
            assert!(
                root.join("events").join(format!("{name}.json")).exists(),
                "{id}: no events/{name}.json sample"
            );
        }
    }

    /// The logical ids of the alarms on `metric` whose dimension `name` refers to `target`.
    fn alarms_on(template: &Template, metric: &str, target: &str) -> usize {
        template
            .of_kind("AWS::CloudWatch::Alarm")
            .filter(|(_, alarm)| {
                alarm.properties.get("MetricName").and_then(Value::as_str) == Some(metric)
                    && serde_norway::to_string(&alarm.properties["Dimensions"])
                        .unwrap_or_default()
                        .contains(target)
            })
            .count()
    }

    #[test]
    fn every_function_has_error_and_throttle_alarms_and_every_queue_an_alarmed_dlq() {
        let template = project_template();
        for (id, _) in template.of_kind("AWS::Serverless::Function") {
            assert_eq!(
                alarms_on(&template, "Errors", id),
                1,
                "{id}: no Errors alarm"
            );
            assert_eq!(
                alarms_on(&template, "Throttles", id),
                1,
                "{id}: no Throttles alarm"
            );
        }
        let queues: Vec<_> = template.of_kind("AWS::SQS::Queue").collect();
        // `deadLetterTargetArn: !GetAtt <Dlq>.Arn` names each queue's DLQ.
        let dlqs: Vec<String> = queues
            .iter()
            .filter_map(|(_, queue)| {
                let target = queue
                    .properties
                    .get("RedrivePolicy")?
                    .get("deadLetterTargetArn")?;
                match target {
                    Value::Tagged(tagged) => tagged
                        .value
                        .as_str()?
                        .strip_suffix(".Arn")
                        .map(str::to_owned),
                    _ => None,
                }
            })
            .collect();
        for (id, queue) in &queues {
            let is_dlq = dlqs.iter().any(|d| d == *id);
            if is_dlq {
                assert_eq!(
                    alarms_on(
                        &template,
                        "ApproximateNumberOfMessagesVisible",
                        &format!("{id}.QueueName")
                    ),
                    1,
                    "{id}: a DLQ without an alarm on its visible messages"
                );
            } else {
                assert!(
                    queue.properties.get("RedrivePolicy").is_some(),
                    "{id}: a queue without a dead-letter queue"
                );
            }
        }
        assert_eq!(dlqs.len(), 3, "{dlqs:?}");
    }

    #[test]
    fn the_webhook_api_throttles_at_the_edge_by_parameters_with_defaults() {
        let template = project_template();
        let settings =
            &template.document["Resources"]["WebhooksApi"]["Properties"]["DefaultRouteSettings"];
        for (property, parameter) in [
            ("ThrottlingRateLimit", "WebhookThrottleRateLimit"),
            ("ThrottlingBurstLimit", "WebhookThrottleBurstLimit"),
        ] {
            let reference = serde_norway::to_string(&settings[property]).unwrap();
            assert!(
                reference.contains(parameter),
                "WebhooksApi.{property} must come from {parameter}: {reference}"
            );
            let default = template.document["Parameters"][parameter]["Default"]
                .as_u64()
                .unwrap_or(0);
            assert!(default >= 100, "{parameter} needs a sensible default");
        }
    }

    fn binary_name(template: &Template, id: &str) -> String {
        template.document["Resources"][id]["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("{id}: Metadata.BuildProperties.Binary names its cargo binary")
            })
            .to_owned()
    }
}
