//! Helpers for ferrolb's deployment tests: they check that the Helm chart, the alert rules,
//! the Grafana dashboard and the docs agree with what the binaries really do (the requests
//! they send, the metrics they export, the flags they accept, the CRD fields they read).
//!
//! The pure parts (RBAC matching, metric-name extraction, Markdown code spans, CRD field
//! paths) live here with unit tests; the tests under `tests/` run the binaries.

pub mod docs;
pub mod metrics;
pub mod paths;
pub mod rbac;
pub mod schema;

/// Failures of the helpers.
#[derive(Debug, thiserror::Error)]
pub enum DeployTestError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A YAML document could not be parsed.
    #[error("parsing YAML {what}: {message}")]
    Yaml {
        /// What was parsed.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// An external tool failed.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// Its output or the spawn error.
        message: String,
    },
}

/// Parses multi-document YAML into JSON values, dropping empty documents.
pub fn parse_yaml_docs(what: &str, text: &str) -> Result<Vec<serde_json::Value>, DeployTestError> {
    let docs = serde_saphyr::from_multiple::<serde_json::Value>(text).map_err(|e| {
        DeployTestError::Yaml {
            what: what.to_owned(),
            message: e.to_string(),
        }
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads a file to a string.
pub fn read(path: &std::path::Path) -> Result<String, DeployTestError> {
    std::fs::read_to_string(path).map_err(|source| DeployTestError::Read {
        path: path.display().to_string(),
        source,
    })
}
