//! The variables a policy condition may read, shared by the CEL path (`expr`) and the
//! fast path (`fast`), so neither imports the other for them.

/// The variables a condition may use, as bits so a policy can record which it needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VarSet(u16);

/// Variables known to conditions, in bit order.
pub(crate) const VARIABLES: [&str; 8] = [
    "actor", "action", "context", "signals", "source", "intent", "tenant", "now",
];

impl VarSet {
    pub(crate) fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }
    pub(crate) fn union(self, other: VarSet) -> VarSet {
        VarSet(self.0 | other.0)
    }
    pub(crate) fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}
