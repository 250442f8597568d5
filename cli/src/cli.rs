//! Flags, reading the cluster, printing, exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, SpeakerStatus};
use ferrolb_speaker::cli::DEFAULT_NAMESPACE;
use ferrolb_speaker::views::{ClassFilter, SERVICE_NAME_LABEL};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::explain::{Cluster, explain, format_text};

/// `ferrolb`: inspect what the ferrolb speakers do.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "ferrolb",
    version,
    about = "Inspect ferrolb (also usable as `kubectl ferrolb`)"
)]
pub struct Cli {
    /// Kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// For every node and BGP peer: is the Service announced (with which route), and if
    /// not, why — computed by the speakers' own decision function.
    Explain(ExplainArgs),
}

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A summary and a table.
    #[default]
    Text,
    /// The full report as JSON.
    Json,
}

/// Flags of `explain`.
#[derive(Clone, Debug, clap::Args)]
pub struct ExplainArgs {
    /// The Service: `<namespace>/<name>`, or `<name>` in the kubeconfig context's namespace.
    pub service: String,
    /// Namespace of the IPAddressPools, BGPPeers, BGPAdvertisements and SpeakerStatuses.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Explain for this node only (default: every node).
    #[arg(long)]
    pub node: Option<String>,
    /// The speakers' `--lb-class` (default: Services without a class, or ferrolb's).
    #[arg(long, env = "FERROLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Why a command failed (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The Service does not exist.
    #[error("Service {namespace}/{name} not found")]
    ServiceNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `--node` names no Node.
    #[error("Node {0} not found")]
    NodeNotFound(String),
    /// The Service argument is malformed.
    #[error("invalid Service {0:?}: expected <namespace>/<name> or <name>")]
    BadService(String),
    /// No usable kube configuration.
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// An API request failed.
    #[error("reading {what}: {source}")]
    Api {
        /// What was being read.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// JSON output failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Splits `ns/name` (or `name`, in `default_ns`).
pub fn parse_service(arg: &str, default_ns: &str) -> Result<(String, String), CliError> {
    let bad = || CliError::BadService(arg.to_owned());
    match arg.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        Some(_) => Err(bad()),
        None if !arg.is_empty() => Ok((default_ns.to_owned(), arg.to_owned())),
        None => Err(bad()),
    }
}

async fn client(cli: &Cli) -> Result<Client, CliError> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&cli.kubeconfig, &cli.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| CliError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| CliError::Config(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| CliError::Config(e.to_string()))
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Api { what, source }
}

/// Lists a ferrolb kind; a missing CRD (404) reads as no objects when `optional`.
async fn list_config<K>(
    client: &Client,
    ns: &str,
    what: &str,
    optional: bool,
) -> Result<Vec<K>, CliError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if optional && s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(api_err(format!("{what} in namespace {ns}"))(e)),
    }
}

/// Reads what `explain` needs.
async fn read_cluster(client: &Client, args: &ExplainArgs) -> Result<Cluster, CliError> {
    let (ns, name) = parse_service(&args.service, client.default_namespace())?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let service = services
        .get_opt(&name)
        .await
        .map_err(api_err(format!("Service {ns}/{name}")))?
        .ok_or_else(|| CliError::ServiceNotFound {
            namespace: ns.clone(),
            name: name.clone(),
        })?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let slices = slices
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name}")))
        .await
        .map_err(api_err(format!("EndpointSlices of {ns}/{name}")))?
        .items;
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = match &args.node {
        Some(n) => vec![
            nodes
                .get_opt(n)
                .await
                .map_err(api_err(format!("Node {n}")))?
                .ok_or_else(|| CliError::NodeNotFound(n.clone()))?,
        ],
        None => {
            nodes
                .list(&ListParams::default())
                .await
                .map_err(api_err("Nodes"))?
                .items
        }
    };
    let cfg = &args.namespace;
    Ok(Cluster {
        service,
        slices,
        nodes,
        pools: list_config::<IPAddressPool>(client, cfg, "IPAddressPools", false).await?,
        peers: list_config::<BGPPeer>(client, cfg, "BGPPeers", false).await?,
        advertisements: list_config::<BGPAdvertisement>(client, cfg, "BGPAdvertisements", false)
            .await?,
        // Older installs have no SpeakerStatus CRD; the answer works without it.
        speaker_statuses: list_config::<SpeakerStatus>(client, cfg, "SpeakerStatuses", true)
            .await?,
    })
}

/// Runs `explain` and returns what to print.
pub async fn explain_command(client: &Client, args: &ExplainArgs) -> Result<String, CliError> {
    let cluster = read_cluster(client, args).await?;
    let class = ClassFilter {
        lb_class: args.lb_class.clone(),
    };
    let report = explain(&cluster, &class);
    Ok(match args.output {
        Output::Text => format_text(&report),
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            s
        }
    })
}

/// Runs the command line: prints the answer (exit 0) or `error: …` on stderr (exit 1).
pub async fn run(cli: Cli) -> ExitCode {
    let result = async {
        let client = client(&cli).await?;
        match &cli.command {
            Command::Explain(args) => explain_command(&client, args).await,
        }
    }
    .await;
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_argument_forms() {
        assert_eq!(
            parse_service("app/web", "default").unwrap(),
            ("app".to_owned(), "web".to_owned())
        );
        assert_eq!(
            parse_service("web", "team").unwrap(),
            ("team".to_owned(), "web".to_owned())
        );
        for bad in ["", "/web", "app/", "a/b/c"] {
            assert!(
                parse_service(bad, "default")
                    .unwrap_err()
                    .to_string()
                    .contains("expected <namespace>/<name>"),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_parse_as_documented() {
        let cli = Cli::try_parse_from([
            "kubectl-ferrolb",
            "explain",
            "app/web",
            "--namespace",
            "lb",
            "--node",
            "n1",
            "-o",
            "json",
        ])
        .unwrap();
        let Command::Explain(a) = cli.command;
        assert_eq!(a.service, "app/web");
        assert_eq!(a.namespace, "lb");
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert_eq!(a.output, Output::Json);
        assert!(Cli::try_parse_from(["ferrolb", "explain", "a/b", "-o", "yaml"]).is_err());
        assert!(Cli::try_parse_from(["ferrolb", "explain"]).is_err());
    }
}
