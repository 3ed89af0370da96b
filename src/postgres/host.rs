//! Host scoping: which rows of the shared tables are this host's, named
//! once for the records, the silences and the history alike.

/// This host's slice of a shared records table, ready for the adapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFilter {
    /// The records table's column naming the host (a validated identifier).
    pub column: String,
    /// This host's id, bound as `$1`.
    pub host_id: String,
}
