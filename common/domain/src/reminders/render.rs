//! A reminder's text: the variant's templates with the case's fields filled in.

use std::collections::BTreeMap;

/// What a reminder says when the company has no active variant.
pub const DEFAULT_SUBJECT: &str = "Your payment did not go through";
pub const DEFAULT_BODY: &str =
    "Hi {{member_name}}, your payment of {{amount}} {{currency}} failed. Update it here: {{recovery_link}}";

/// Fills `{{name}}` placeholders (the names variants are checked against when saved); an
/// unknown name renders as nothing, an unclosed `{{` as itself.
pub fn render(template: &str, fields: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(fields.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::format_minor;

    #[test]
    fn templates_render_known_fields_and_leave_nothing_unfilled() {
        let fields = BTreeMap::from([
            ("amount", "49.00".to_owned()),
            ("currency", "USD".to_owned()),
        ]);
        assert_eq!(
            render("Pay {{ amount }} {{currency}} now", &fields),
            "Pay 49.00 USD now"
        );
        assert_eq!(render("{{unknown}}!", &fields), "!");
        assert_eq!(render("open {{amount", &fields), "open {{amount");
        assert_eq!(format_minor(4900, "usd"), "49.00");
        assert_eq!(format_minor(5, "usd"), "0.05");
    }
}
