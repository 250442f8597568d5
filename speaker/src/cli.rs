//! Command-line flags of `ferrolb-speaker`; each one can also come from an environment
//! variable, so a DaemonSet can set them either way (`NODE_NAME` from the downward API).

use std::net::SocketAddr;

use clap::Parser;
pub use ferrolb_ops::LogFormat;

/// Namespace of the ferrolb objects when neither `--namespace` nor `$POD_NAMESPACE` is set.
pub const DEFAULT_NAMESPACE: &str = "ferrolb-system";

/// Flags of `ferrolb-speaker`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "ferrolb-speaker",
    version,
    about = "Announces this node's LoadBalancer Service IPs to BGP peers"
)]
pub struct Args {
    /// Name of the Node this speaker runs on (normally from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// `spec.loadBalancerClass` to handle. Without it, only Services with no class (or
    /// ferrolb's default class) are handled.
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Namespace holding the IPAddressPools, BGPPeers and BGPAdvertisements (default:
    /// `$POD_NAMESPACE`, else `ferrolb-system`).
    #[arg(long, env = "FERROLB_NAMESPACE")]
    pub namespace: Option<String>,
}

impl Args {
    /// The configuration namespace after applying the defaults.
    pub fn namespace(&self) -> String {
        self.namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    }

    /// Checks what clap cannot express.
    pub fn check(&self) -> Result<(), String> {
        if self.node_name.trim().is_empty() {
            return Err("--node-name (or NODE_NAME) must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_is_required() {
        // NODE_NAME may be set in the environment running the tests; clap reads it, so only
        // check the failure when it is absent.
        if std::env::var_os("NODE_NAME").is_none() {
            assert!(Args::try_parse_from(["ferrolb-speaker"]).is_err());
        }
        let a = Args::try_parse_from(["ferrolb-speaker", "--node-name", " "]).unwrap();
        assert!(a.check().unwrap_err().contains("--node-name"));
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = Args::try_parse_from(["ferrolb-speaker", "--node-name", "n1"]).unwrap();
        assert_eq!(a.node_name, "n1");
        assert_eq!(a.metrics_addr, "0.0.0.0:7473".parse().unwrap());
        assert_eq!(a.log_format, LogFormat::Text);
        assert!(a.check().is_ok());
    }

    #[test]
    fn flags_override_defaults() {
        let a = Args::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "n1",
            "--lb-class",
            "example.com/lb",
            "--metrics-addr",
            "127.0.0.1:9999",
            "--log-format",
            "json",
            "--namespace",
            "lb",
        ])
        .unwrap();
        assert_eq!(a.lb_class.as_deref(), Some("example.com/lb"));
        assert_eq!(a.metrics_addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.namespace(), "lb");
        assert!(
            Args::try_parse_from(["ferrolb-speaker", "--node-name", "n", "--log-format", "xml"])
                .is_err()
        );
    }
}
