//! The verdict vocabulary: [`Status`] and [`Gate`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The answer to "may this action run now?".
///
/// The engine and the server produce the first four. [`Status::Unknown`] is what a
/// reader (the SDK) gets for a status it does not know, from a newer server: it is
/// treated as a block, and it is never sent by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The action may run.
    Allow,
    /// A person must review the action first.
    ReviewRequired,
    /// The action is escalated to a person.
    Escalate,
    /// The action must not run.
    Block,
    /// A status this reader does not know: treated as a block.
    #[serde(other)]
    Unknown,
}

impl Status {
    /// The statuses a verdict can carry (every one but [`Status::Unknown`]).
    pub const SERVED: [Status; 4] = [
        Status::Allow,
        Status::ReviewRequired,
        Status::Escalate,
        Status::Block,
    ];

    /// Restrictiveness rank: BLOCK (and an unknown status) > ESCALATE >
    /// REVIEW_REQUIRED > ALLOW.
    pub fn severity(self) -> u8 {
        match self {
            Status::Allow => 0,
            Status::ReviewRequired => 1,
            Status::Escalate => 2,
            Status::Block | Status::Unknown => 3,
        }
    }

    /// The wire name (`ALLOW`, `BLOCK`, ...; `UNKNOWN` for [`Status::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Allow => "ALLOW",
            Status::ReviewRequired => "REVIEW_REQUIRED",
            Status::Escalate => "ESCALATE",
            Status::Block => "BLOCK",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate that decided (or, in a trace, that ran).
///
/// The engine and the server produce the first six. [`Gate::Unavailable`] is the
/// SDK's own (it failed closed, or open, without a verdict) and [`Gate::Unknown`] is
/// what a reader gets for a gate it does not know; the server sends neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Operator kill switches.
    Override,
    /// A human approval for this exact request (or the lack of one).
    Review,
    /// Policy rules and the survival score (also unknown policies).
    Policy,
    /// Bands on numeric signals.
    Reality,
    /// Token buckets: transient, retry after `retry_after_ms`.
    Throttle,
    /// Every gate passed.
    Permit,
    /// Not a server gate: the client got no verdict (transport error, timeout, 5xx,
    /// an unexpected answer) and failed closed (or, when configured, open).
    Unavailable,
    /// A gate this reader does not know: handle it as a block.
    #[serde(other)]
    Unknown,
}

impl Gate {
    /// The gates a verdict can name (every one but [`Gate::Unavailable`] and
    /// [`Gate::Unknown`]).
    pub const SERVED: [Gate; 6] = [
        Gate::Override,
        Gate::Review,
        Gate::Policy,
        Gate::Reality,
        Gate::Throttle,
        Gate::Permit,
    ];

    /// The wire name (`policy`, `reality`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Override => "override",
            Gate::Review => "review",
            Gate::Policy => "policy",
            Gate::Reality => "reality",
            Gate::Throttle => "throttle",
            Gate::Permit => "permit",
            Gate::Unavailable => "unavailable",
            Gate::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The schemas list only what the server sends ([`Status::SERVED`], [`Gate::SERVED`]).
#[cfg(feature = "utoipa")]
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Gate, Status};

    fn string_enum(
        description: &str,
        values: impl IntoIterator<Item = &'static str>,
    ) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(values))
            .into()
    }

    impl PartialSchema for Status {
        fn schema() -> RefOr<Schema> {
            string_enum(
                "A verdict status; a client should treat a value it does not know as a block.",
                Status::SERVED.map(Status::as_str),
            )
        }
    }

    impl ToSchema for Status {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Status")
        }
    }

    impl PartialSchema for Gate {
        fn schema() -> RefOr<Schema> {
            string_enum(
                "The gate that decided; a client should treat a value it does not know as a block.",
                Gate::SERVED.map(Gate::as_str),
            )
        }
    }

    impl ToSchema for Gate {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Gate")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_unknown_values_are_tolerated() {
        for s in Status::SERVED {
            let wire = serde_json::to_value(s).unwrap();
            assert_eq!(wire, s.as_str());
            assert_eq!(serde_json::from_value::<Status>(wire).unwrap(), s);
        }
        for g in Gate::SERVED {
            let wire = serde_json::to_value(g).unwrap();
            assert_eq!(wire, g.as_str());
            assert_eq!(serde_json::from_value::<Gate>(wire).unwrap(), g);
        }
        assert_eq!(
            serde_json::from_str::<Status>("\"MAYBE\"").unwrap(),
            Status::Unknown
        );
        assert_eq!(
            serde_json::from_str::<Gate>("\"oracle\"").unwrap(),
            Gate::Unknown
        );
        assert_eq!(Status::Unknown.severity(), Status::Block.severity());
        assert_eq!(Status::ReviewRequired.to_string(), "REVIEW_REQUIRED");
        assert_eq!(Gate::Unavailable.to_string(), "unavailable");
    }
}
