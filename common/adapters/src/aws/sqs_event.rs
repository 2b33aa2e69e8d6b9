//! SQS messages as Lambda's SQS event source delivers them: the local cloud and tests build
//! real `SqsEvent` records from what they receive.

use aws_lambda_events::event::sqs::SqsMessage;

/// A received message as the record Lambda would hand a consumer.
pub fn lambda_record(
    message: &aws_sdk_sqs::types::Message,
    queue_arn: &str,
    region: &str,
) -> SqsMessage {
    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    record.attributes = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    record.message_attributes = message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = value.string_value().map(str::to_owned);
                    attribute.data_type = Some(value.data_type().to_owned());
                    (name.clone(), attribute)
                })
                .collect()
        })
        .unwrap_or_default();
    record.event_source_arn = Some(queue_arn.to_owned());
    record.event_source = Some("aws:sqs".to_owned());
    record.aws_region = Some(region.to_owned());
    record
}
