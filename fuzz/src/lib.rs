//! Shared pieces of the fuzz targets: run a translated request through the real
//! engine with the built-in policy, so every parser's output also meets validation
//! and the pipeline.

use tollgate_core::{
    DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, UnixMillis, csc_default, decide,
};

/// Maximum JSON nesting, as the server's default configuration.
pub const MAX_JSON_DEPTH: usize = 32;

/// Decides `request` against `csc-default` (and `extra`, when given). Errors are
/// fine (invalid requests are 422s); panics are what the fuzzer looks for.
pub fn decide_once(request: &DecisionRequest, extra: Option<PolicyBinding>) {
    let Ok(builtin) = csc_default() else {
        return;
    };
    let mut policies = vec![PolicyBinding::Found(builtin)];
    policies.extend(extra);
    let input = DecideInput {
        request,
        policies: &policies,
        now: UnixMillis(1_700_000_000_000),
        overrides: &[],
        outcomes: &[],
        approval: None,
        tenant_shadow: false,
    };
    if let Ok(verdict) = decide(&input, &mut MemoryBuckets::new()) {
        // The verdict must serialise: the server records and answers it.
        let _ = serde_json::to_vec(&verdict);
    }
}
