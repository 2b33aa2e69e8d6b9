//! EventBridge schedule expressions: `rate(value unit)` and `cron(min hour dom month dow year)`
//! in UTC (AWS's six fields, `?` allowed, days of week 1-7 = SUN-SAT), and the event
//! EventBridge sends when one fires.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub enum Schedule {
    Rate(Duration),
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    pub fn parse(expression: &str) -> anyhow::Result<Schedule> {
        let expression = expression.trim();
        if let Some(inner) = expression
            .strip_prefix("rate(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let (value, unit) = inner
                .trim()
                .split_once(' ')
                .ok_or_else(|| anyhow!("{expression}: expected rate(value unit)"))?;
            let value: u64 = value.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                anyhow!("{expression}: the value must be a positive whole number")
            })?;
            let unit_secs = match (unit.trim(), value) {
                ("minute", 1) | ("minutes", 2..) => 60,
                ("hour", 1) | ("hours", 2..) => 3_600,
                ("day", 1) | ("days", 2..) => 86_400,
                _ => bail!(
                    "{expression}: the unit must be minute(s), hour(s) or day(s), singular for 1"
                ),
            };
            return Ok(Schedule::Rate(Duration::from_secs(value * unit_secs)));
        }
        if let Some(inner) = expression
            .strip_prefix("cron(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            if fields.len() != 6 {
                bail!("{expression}: AWS cron has six fields (minutes hours day-of-month month day-of-week year)");
            }
            if fields[2] != "?" && fields[4] != "?" {
                bail!("{expression}: one of day-of-month and day-of-week must be ?");
            }
            // The cron crate reads seconds first, then the same fields in AWS's order.
            let schedule = cron::Schedule::from_str(&format!("0 {}", fields.join(" ")))
                .map_err(|e| anyhow!("{expression}: {e}"))?;
            return Ok(Schedule::Cron(Box::new(schedule)));
        }
        bail!("{expression}: expected rate(...) or cron(...)")
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match self {
            Schedule::Rate(every) => Some(after + *every),
            Schedule::Cron(schedule) => {
                let after: DateTime<Utc> = after.into();
                schedule.after(&after).next().map(SystemTime::from)
            }
        }
    }
}

/// The event EventBridge delivers for a scheduled rule.
pub fn scheduled_event(function_rule: &str, at: SystemTime, request_id: &str) -> serde_json::Value {
    let time: DateTime<Utc> = at.into();
    serde_json::json!({
        "version": "0",
        "id": request_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": crate::template::LOCAL_ACCOUNT,
        "time": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": crate::template::LOCAL_REGION,
        "resources": [format!(
            "arn:aws:events:{}:{}:rule/{function_rule}",
            crate::template::LOCAL_REGION,
            crate::template::LOCAL_ACCOUNT
        )],
        "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> SystemTime {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().into()
    }

    #[test]
    fn rates_fire_at_their_interval() {
        let start = at(2026, 1, 1, 0, 0);
        let every = |e: &str| Schedule::parse(e).unwrap().next_after(start).unwrap();
        assert_eq!(every("rate(1 minute)"), at(2026, 1, 1, 0, 1));
        assert_eq!(every("rate(5 minutes)"), at(2026, 1, 1, 0, 5));
        assert_eq!(every("rate(2 hours)"), at(2026, 1, 1, 2, 0));
        for bad in [
            "rate(1 minutes)",
            "rate(0 minutes)",
            "rate(5 seconds)",
            "rate(x minutes)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aws_cron_fields_mean_what_eventbridge_means() {
        // 2026-01-01 is a Thursday.
        let start = at(2026, 1, 1, 0, 0);
        let next = |e: &str| Schedule::parse(e).unwrap().next_after(start).unwrap();
        assert_eq!(next("cron(0/15 * * * ? *)"), at(2026, 1, 1, 0, 15));
        assert_eq!(next("cron(0 10 * * ? *)"), at(2026, 1, 1, 10, 0));
        // Day of week 2 is Monday in AWS's numbering (1 = Sunday).
        assert_eq!(next("cron(0 9 ? * 2 *)"), at(2026, 1, 5, 9, 0));
        assert_eq!(next("cron(0 9 ? * MON-FRI *)"), at(2026, 1, 1, 9, 0));
        assert_eq!(next("cron(30 6 1 * ? *)"), at(2026, 1, 1, 6, 30));
        assert_eq!(next("cron(0 0 1 * ? *)"), at(2026, 2, 1, 0, 0));
        for bad in [
            "cron(* * * * *)",
            "cron(0 9 * * 2 *)",
            "cron(0 25 * * ? *)",
            "every day",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scheduled_event_has_eventbridges_shape() {
        let event = scheduled_event("Digest", at(2026, 3, 1, 12, 0), "r-1");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["time"], "2026-03-01T12:00:00Z");
        assert_eq!(event["detail"], serde_json::json!({}));
    }
}
