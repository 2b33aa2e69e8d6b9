//! Sample provider events for benchmarks and load tests.

/// A Stripe `invoice.payment_failed` event of about `size` bytes (line items repeated to reach
/// it), with the given event id.
pub fn stripe_event(size: usize, event_id: &str) -> Vec<u8> {
    let head = format!(
        r#"{{"id":"{event_id}","object":"event","api_version":"2024-06-20","created":1699999990,"type":"invoice.payment_failed","livemode":true,"pending_webhooks":1,"data":{{"object":{{"id":"in_1PbenchInvoice","object":"invoice","customer":"cus_Pbench","subscription":"sub_1Pbench","amount_due":4900,"currency":"usd","status":"open","lines":{{"object":"list","data":["#
    );
    let item = r#"{"id":"il_1PbenchLine","object":"line_item","amount":4900,"currency":"usd","description":"1 x Pro (at $49.00 / month)","period":{"end":1702592000,"start":1700000000},"price":{"id":"price_1Pbench","product":"prod_Pbench","unit_amount":4900}},"#;
    let tail = r#"{"id":"il_last"}]}}}}"#;
    let mut body = head;
    while body.len() + item.len() + tail.len() <= size {
        body.push_str(item);
    }
    body.push_str(tail);
    body.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripe_sample_is_json_of_about_its_size_with_its_id() {
        for size in [2048, 65_536] {
            let body = stripe_event(size, "evt_x");
            assert!(
                body.len() <= size && body.len() > size - 400,
                "{}",
                body.len()
            );
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["id"], "evt_x");
        }
    }
}
