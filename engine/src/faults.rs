//! Fault-injection campaigns: run the model with exact verification while injecting seeded
//! single bit flips, one fault per forward pass, and count what the checksums saw.
//!
//! For each fault, the same token sequence is run twice — once with the fault and the
//! `correct` policy, once with the fault and the `detect` policy (no repair) — and compared
//! with a fault-free run: whether the faulted product changed, whether a checksum flagged it,
//! whether the repair restored it, and how much the final logits moved with and without repair.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{KvCache, Logits, Model, State, VerifyCtx};
use crate::sample::Rng;
use crate::verify::{Fault, Policy, Site, VerifyStats};

/// Totals of a campaign (the JSON of `rotor faults`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultReport {
    pub site: String,
    pub injected: usize,
    /// The faulted integer product differed from the fault-free one.
    pub output_changed: usize,
    /// A checksum flagged the faulted product.
    pub detected: usize,
    /// The repair restored the exact product.
    pub corrected: usize,
    /// Changed the product but not flagged.
    pub missed: usize,
    /// Flagged although the product was right (checksum faults), plus mismatches in the
    /// fault-free reference run.
    pub false_positives: usize,
    /// Products checked over the whole campaign.
    pub products_checked: u64,
    /// Faults after which the final logits differ from the fault-free run, with repair…
    pub logits_changed_repaired: usize,
    /// …and without repair (detect only).
    pub logits_changed_unrepaired: usize,
    /// Largest |Δlogit| with repair and without.
    pub max_logit_delta_repaired: f32,
    pub max_logit_delta_unrepaired: f32,
    pub layout: String,
    pub kernel: String,
}

fn max_delta(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Inject `count` seeded single faults at `site`, one per forward pass over `tokens`.
/// The model must have been loaded with checksums (`LoadOptions::checksums`).
pub fn campaign(
    model: &Model,
    tokens: &[u32],
    site: Site,
    count: usize,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<FaultReport> {
    if model.layers.first().is_some_and(|l| l.q.checks.is_none()) {
        return Err(Error::Invalid(
            "fault injection needs checksums: load the model with verification on".into(),
        ));
    }
    let n_lin = model.layers.len() * 7;
    let cap = tokens.len();
    let mut cache = KvCache::new(model, cap);
    let mut st = State::new(model, crate::model::PREFILL_BATCH, cap);
    let stats = VerifyStats::default();
    let clean = model
        .forward(
            tokens,
            &mut cache,
            &mut st,
            Logits::All,
            VerifyCtx {
                policy: Policy::Correct,
                stats: Some(&stats),
                fault: None,
            },
        )?
        .to_vec();
    let mut r = FaultReport {
        site: site.name().into(),
        false_positives: stats.snapshot()[1] as usize,
        layout: model.layout.name().into(),
        kernel: model.kernel.name().into(),
        ..Default::default()
    };
    let mut rng = Rng::new(Rng::seed_from(&[seed, site as u64]));
    for i in 0..count {
        let target = (rng.next_u64() % n_lin as u64) as usize;
        let selector = rng.next_u64();
        let mut run = |policy: Policy| -> Result<(Vec<f32>, Option<crate::verify::FaultOutcome>)> {
            let f = Fault::new(target, site, selector);
            cache.clear();
            let l = model
                .forward(
                    tokens,
                    &mut cache,
                    &mut st,
                    Logits::All,
                    VerifyCtx {
                        policy,
                        stats: Some(&stats),
                        fault: Some(&f),
                    },
                )?
                .to_vec();
            Ok((l, f.outcome()))
        };
        let (repaired, o) = run(Policy::Correct)?;
        let (unrepaired, _) = run(Policy::Detect)?;
        let o =
            o.ok_or_else(|| Error::Invalid(format!("fault {i} never fired (target {target})")))?;
        r.injected += 1;
        r.output_changed += o.output_changed as usize;
        r.detected += o.detected as usize;
        r.corrected += (o.output_changed && o.corrected) as usize;
        r.missed += (o.output_changed && !o.detected) as usize;
        r.false_positives += (o.detected && !o.output_changed) as usize;
        let (dr, du) = (max_delta(&repaired, &clean), max_delta(&unrepaired, &clean));
        r.logits_changed_repaired += (dr > 0.0) as usize;
        r.logits_changed_unrepaired += (du > 0.0) as usize;
        r.max_logit_delta_repaired = r.max_logit_delta_repaired.max(dr);
        r.max_logit_delta_unrepaired = r.max_logit_delta_unrepaired.max(du);
        progress(i + 1);
    }
    r.products_checked = stats.snapshot()[0];
    Ok(r)
}
