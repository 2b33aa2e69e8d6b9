//! Amounts in minor units, by the currency's exponent: most currencies have cents, some have no
//! minor unit (JPY, KRW, ...) and a few have thousandths (KWD, BHD, ...). Providers send minor
//! units (Stripe) or decimal amounts (Whop); reminders show decimal amounts.

/// Currencies without a minor unit, as Stripe charges them (ISO 4217 exponent 0, plus MGA).
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Currencies with thousandths (ISO 4217 exponent 3).
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// How many decimal places the currency's minor unit has (2 unless known otherwise).
pub fn exponent(currency: &str) -> u32 {
    let upper = currency.trim().to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&upper.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&upper.as_str()) {
        3
    } else {
        2
    }
}

/// `4900` USD -> `"49.00"`, `4900` JPY -> `"4900"`, `1500` KWD -> `"1.500"`.
pub fn format_minor(amount: i64, currency: &str) -> String {
    let places = exponent(currency);
    if places == 0 {
        return amount.to_string();
    }
    let unit = 10_i64.pow(places);
    let sign = if amount < 0 { "-" } else { "" };
    let magnitude = amount.unsigned_abs();
    let unit = unit.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = places as usize
    )
}

/// A decimal amount (`19.99`) in the currency's minor units (`1999`), or None when it is
/// negative, not finite or absurdly large.
pub fn to_minor(decimal: f64, currency: &str) -> Option<i64> {
    let scaled = decimal * 10_f64.powi(exponent(currency) as i32);
    (scaled.is_finite() && (0.0..9.0e15).contains(&scaled)).then(|| scaled.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_render_with_their_currencys_decimal_places() {
        assert_eq!(format_minor(4900, "usd"), "49.00");
        assert_eq!(format_minor(5, "EUR"), "0.05");
        assert_eq!(format_minor(4900, "jpy"), "4900");
        assert_eq!(format_minor(15000, "KRW"), "15000");
        assert_eq!(format_minor(1500, "kwd"), "1.500");
        assert_eq!(format_minor(-250, "usd"), "-2.50");
        assert_eq!(format_minor(0, "usd"), "0.00");
    }

    #[test]
    fn decimal_amounts_become_minor_units_of_their_currency() {
        assert_eq!(to_minor(19.99, "usd"), Some(1999));
        assert_eq!(to_minor(49.0, "USD"), Some(4900));
        assert_eq!(to_minor(1000.0, "jpy"), Some(1000));
        assert_eq!(to_minor(1.5, "bhd"), Some(1500));
        assert_eq!(to_minor(-1.0, "usd"), None);
        assert_eq!(to_minor(f64::NAN, "usd"), None);
        assert_eq!(to_minor(1e20, "usd"), None);
    }
}
