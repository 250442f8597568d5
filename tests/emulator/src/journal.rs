//! The request and watch-event journal (spec F10).

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// One event written on a watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchEventRecord {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub event_type: String,
    /// The resourceVersion the event carried.
    pub resource_version: String,
    /// Object namespace ("" when cluster-scoped or not applicable).
    pub namespace: String,
    /// Object name ("" for bookmarks and errors).
    pub name: String,
}

/// One API request as the server saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Sequence number, starting at 1.
    pub id: u64,
    /// HTTP method.
    pub method: String,
    /// Request path without the query.
    pub path: String,
    /// Raw query string ("" when absent).
    pub query: String,
    /// Kubernetes verb (get, list, watch, create, update, patch, delete,
    /// deletecollection) or "" for non-resource paths.
    pub verb: String,
    /// API group of the resource.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, if any.
    pub subresource: Option<String>,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Selected headers: user-agent, content-type, accept.
    pub headers: Vec<(String, String)>,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// Response status (for watches: the status of the response head).
    pub status: u16,
    /// Time to the response head.
    #[serde(with = "duration_micros")]
    pub latency: Duration,
    /// Is this a watch?
    pub watch: bool,
    /// Events sent on this watch so far.
    pub events: Vec<WatchEventRecord>,
}

mod duration_micros {
    use serde::Serializer;
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl JournalEntry {
    /// The value of a query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        crate::server::parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
    /// The value of a recorded header (lowercase name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The `metadata.resourceVersion` the body carried, if any.
    pub fn body_resource_version(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        v.pointer("/metadata/resourceVersion")?
            .as_str()
            .map(str::to_owned)
    }
}

/// In-memory journal shared by the server and the [`crate::Emulator`] handle.
#[derive(Debug, Default)]
pub(crate) struct JournalStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// id of entries[0]
    base: u64,
    entries: Vec<JournalEntry>,
}

impl JournalStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub(crate) fn push(&self, mut e: JournalEntry) -> u64 {
        let mut g = self.lock();
        g.next_id += 1;
        e.id = g.next_id;
        if g.entries.is_empty() {
            g.base = e.id;
        }
        g.entries.push(e);
        g.next_id
    }
    pub(crate) fn set_result(&self, id: u64, status: u16, latency: Duration) {
        let mut g = self.lock();
        let base = g.base;
        if let Some(e) = id
            .checked_sub(base)
            .and_then(|i| g.entries.get_mut(usize::try_from(i).ok()?))
        {
            e.status = status;
            e.latency = latency;
        }
    }
    pub(crate) fn add_event(&self, id: u64, ev: WatchEventRecord) {
        let mut g = self.lock();
        let base = g.base;
        if let Some(e) = id
            .checked_sub(base)
            .and_then(|i| g.entries.get_mut(usize::try_from(i).ok()?))
        {
            e.events.push(ev);
        }
    }
    pub(crate) fn snapshot(&self) -> Vec<JournalEntry> {
        self.lock().entries.clone()
    }
    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        g.entries.clear();
    }
}

/// A snapshot of the journal with assertion helpers.
#[derive(Debug, Clone)]
pub struct Journal {
    /// Every recorded request, oldest first.
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// Requests with this verb.
    pub fn with_verb(&self, verb: &str) -> Vec<&JournalEntry> {
        self.entries.iter().filter(|e| e.verb == verb).collect()
    }
    /// Requests on a resource plural (any verb).
    pub fn on_resource(&self, resource: &str) -> Vec<&JournalEntry> {
        self.entries
            .iter()
            .filter(|e| e.resource == resource)
            .collect()
    }
    /// Number of LIST requests on a resource.
    pub fn list_count(&self, resource: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.verb == "list" && e.resource == resource)
            .count()
    }
    /// Number of WATCH requests on a resource.
    pub fn watch_count(&self, resource: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.verb == "watch" && e.resource == resource)
            .count()
    }
    /// PUT requests whose body carries no `metadata.resourceVersion`.
    pub fn puts_without_resource_version(&self) -> Vec<&JournalEntry> {
        self.entries
            .iter()
            .filter(|e| {
                e.method == "PUT" && e.body_resource_version().is_none_or(|rv| rv.is_empty())
            })
            .collect()
    }
    /// Status writes (PUT/PATCH on `/status`) not made with `fieldManager=manager`.
    pub fn status_writes_not_by(&self, manager: &str) -> Vec<&JournalEntry> {
        self.entries
            .iter()
            .filter(|e| {
                e.subresource.as_deref() == Some("status")
                    && (e.method == "PUT" || e.method == "PATCH")
            })
            .filter(|e| e.query_param("fieldManager").as_deref() != Some(manager))
            .collect()
    }
    /// Writes (create/update/patch/delete/deletecollection).
    pub fn writes(&self) -> Vec<&JournalEntry> {
        self.entries
            .iter()
            .filter(|e| {
                matches!(
                    e.verb.as_str(),
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
            })
            .collect()
    }
    /// Requests that answered with this status code.
    pub fn with_status(&self, code: u16) -> Vec<&JournalEntry> {
        self.entries.iter().filter(|e| e.status == code).collect()
    }
}
