//! The conformance suite.
/// Placeholder.
pub async fn placeholder() {}
