//! Command-line flags of `ferrolb-controller`; each one can also come from an environment
//! variable, so a Deployment can set them either way.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
pub use ferrolb_ops::LogFormat;

/// Namespace for the Lease when neither `--lease-namespace` nor `$POD_NAMESPACE` is set.
pub const DEFAULT_LEASE_NAMESPACE: &str = "ferrolb-system";

/// Flags of `ferrolb-controller`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "ferrolb-controller",
    version,
    about = "Assigns LoadBalancer IPs from ferrolb address pools"
)]
pub struct Args {
    /// `spec.loadBalancerClass` to handle. Without it, only Services with no class are handled.
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among replicas through a Lease; only the leader writes.
    #[arg(long, env = "FERROLB_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "FERROLB_LEASE_NAME", default_value = "ferrolb-controller")]
    pub lease_name: String,
    /// Namespace of the Lease (default: `$POD_NAMESPACE`, else `ferrolb-system`).
    #[arg(long, env = "FERROLB_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease stays valid after its last renewal.
    #[arg(long, env = "FERROLB_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader gives up leadership when it could not renew for this long.
    #[arg(long, env = "FERROLB_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// Interval between acquisition attempts and renewals.
    #[arg(long, env = "FERROLB_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// Log format.
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// This replica's identity in the Lease (default: `$POD_NAME`, else the host name).
    #[arg(long, env = "FERROLB_IDENTITY")]
    pub identity: Option<String>,
}

impl Args {
    /// The Lease namespace after applying the defaults.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| non_empty_env("POD_NAMESPACE"))
            .unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.to_owned())
    }

    /// The identity after applying the defaults.
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| non_empty_env("POD_NAME"))
            .or_else(|| non_empty_env("HOSTNAME"))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "ferrolb-controller".to_owned())
    }

    /// Checks relations between flags that clap cannot express.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("--retry-period must be positive".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({:?}) must be shorter than --lease-duration ({:?}), so a leader stops writing before another may take over",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period ({:?}) must be shorter than --renew-deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parses `15s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let (num, unit) = match v.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (e.g. 15s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{value:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = Args::try_parse_from(["ferrolb-controller"]).unwrap();
        assert_eq!(a.lb_class, None);
        assert_eq!(a.metrics_addr, "0.0.0.0:7472".parse().unwrap());
        assert!(a.leader_elect);
        assert_eq!(a.lease_name, "ferrolb-controller");
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert_eq!(a.renew_deadline, Duration::from_secs(10));
        assert_eq!(a.retry_period, Duration::from_secs(2));
        assert_eq!(a.log_format, LogFormat::Text);
        assert!(a.check().is_ok());
    }

    #[test]
    fn flags_override_defaults() {
        let a = Args::try_parse_from([
            "ferrolb-controller",
            "--lb-class",
            "example.com/lb",
            "--leader-elect",
            "false",
            "--lease-namespace",
            "lb",
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "500ms",
            "--log-format",
            "json",
            "--identity",
            "a",
        ])
        .unwrap();
        assert_eq!(a.lb_class.as_deref(), Some("example.com/lb"));
        assert!(!a.leader_elect);
        assert_eq!(a.lease_namespace(), "lb");
        assert_eq!(a.retry_period, Duration::from_millis(500));
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.identity(), "a");
        assert!(a.check().is_ok());
    }

    #[test]
    fn renew_deadline_must_be_shorter_than_lease() {
        let a = Args::try_parse_from([
            "ferrolb-controller",
            "--lease-duration",
            "5s",
            "--renew-deadline",
            "5s",
        ])
        .unwrap();
        assert!(a.check().unwrap_err().contains("--renew-deadline"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("").is_err());
    }
}
