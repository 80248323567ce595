//! `Mute`: a known failure of one test (optionally of one failure signature) that does not
//! fail a run's verdict until the mute expires, or its ticket is closed.
//!
//! The spec says what is muted (`service`, `test`, optionally `signature`), why (`reason`,
//! `ticket`) and until when (`expires`, and `liftWhenTicketClosed`). Whether a mute is in
//! force at an instant is decided by [`crate::mute`] from the spec and the status, never by
//! a controller having run: an expired mute is out of force at its expiry even when nothing
//! has written `status.state: Expired` yet.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::NAME_PATTERN;

/// Pattern of a tracker ticket key (Jira and Yandex Tracker alike): `QA-123`.
pub const TICKET_PATTERN: &str = "^[A-Z][A-Z0-9_]*-[0-9]+$";
/// Pattern of a failure signature ([`crate::results::Signature`]): 16 lowercase hex digits.
pub const SIGNATURE_PATTERN: &str = "^[0-9a-f]{16}$";

/// Spec of a Mute.
// kube's printcolumn(...) repeats keys by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "tomato.dev",
    version = "v1alpha1",
    kind = "Mute",
    namespaced,
    status = "MuteStatus",
    shortname = "mu",
    category = "tomato",
    derive = "PartialEq",
    doc = "A known failure of one test (or of one failure signature of it): shown and counted as muted, it does not fail a run's verdict until the mute expires or its ticket is closed.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Test", type_ = "string", json_path = ".spec.test"),
    printcolumn(name = "Ticket", type_ = "string", json_path = ".spec.ticket"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".spec.expires"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("!has(self.spec.liftWhenTicketClosed) || !self.spec.liftWhenTicketClosed || has(self.spec.ticket)")
        .message("spec.liftWhenTicketClosed needs spec.ticket")
)]
#[serde(rename_all = "camelCase")]
pub struct MuteSpec {
    /// A service defined in packs_config.
    #[schemars(regex(pattern = NAME_PATTERN), length(max = 63))]
    pub service: String,
    /// The test's id, as the run page and `/api/v1/runs/{id}/tests` show it.
    #[schemars(length(min = 1, max = 1024))]
    pub test: String,
    /// Mute only failures with this signature (as the run page shows it); any failure of the
    /// test when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIGNATURE_PATTERN))]
    pub signature: Option<String>,
    /// Why the failure is muted (shown beside each muted failure).
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
    /// The tracker ticket for the failure (`QA-123`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TICKET_PATTERN))]
    pub ticket: Option<String>,
    /// The mute is out of force from this instant.
    pub expires: DateTime<Utc>,
    /// Lift the mute once its ticket is closed (the tracker of the report settings is read).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lift_when_ticket_closed: bool,
    /// Who muted it, as the client says (free text, shown with the mute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub author: Option<String>,
}

/// Where a mute stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum MuteState {
    /// In force.
    #[default]
    Active,
    /// Past `spec.expires`.
    Expired,
    /// Its ticket was closed (`spec.liftWhenTicketClosed`).
    Lifted,
}

impl MuteState {
    pub fn as_str(self) -> &'static str {
        match self {
            MuteState::Active => "Active",
            MuteState::Expired => "Expired",
            MuteState::Lifted => "Lifted",
        }
    }
}

/// What Tomato last found of a mute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteStatus {
    pub state: MuteState,
    /// Why it is not active, or the last problem reading its ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The ticket's status in the tracker when last read (`Open`, `Done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_status: Option<String>,
    /// When the ticket was last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    /// When the mute went out of force (expired or lifted), as Tomato noticed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}
