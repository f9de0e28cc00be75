//! Splitting work over output rows across the current rayon pool.
//!
//! Kernels write `[row][batch]` outputs, so a range of rows ("units") owns a contiguous slice
//! of every output group, and threads never share a cache line of output except at chunk
//! borders. The thread count is that of the rayon pool the caller runs in
//! (`ThreadPool::install`), so `--threads N` is honoured without a global setting.

use std::ops::Range;

use rayon::prelude::*;

use super::{Acts, TernaryLayout};
use crate::kernels::Kernel;

/// How many units one task gets: about four tasks per thread for balance, a multiple of
/// `align`, and at least `min_units`.
fn chunk_units(units: usize, align: usize, min_units: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let per = units.div_ceil(threads * 4).max(min_units).max(1);
    per.div_ceil(align) * align
}

/// Call `f(unit_range, outs)` over chunks of `0..units` in parallel, where `outs[g]` is the
/// part of group `g` that belongs to the chunk (`unit_len` elements per unit).
pub fn for_each_unit_chunk<T: Send>(
    groups: Vec<&mut [T]>,
    unit_len: usize,
    units: usize,
    min_units: usize,
    f: impl Fn(Range<usize>, &mut [&mut [T]]) + Sync + Send,
) {
    let chunk = chunk_units(units, 8, min_units);
    if units == 0 {
        return;
    }
    if chunk >= units || rayon::current_num_threads() == 1 {
        let mut groups = groups;
        f(0..units, &mut groups);
        return;
    }
    let tasks = split_tasks(groups, unit_len, units, chunk);
    tasks
        .into_par_iter()
        .for_each(|(range, mut outs)| f(range, &mut outs));
}

/// [`for_each_unit_chunk`] over two sets of groups split at the same unit boundaries.
#[allow(clippy::type_complexity)]
pub fn for_each_unit_chunk2<T: Send, U: Send>(
    groups: Vec<&mut [T]>,
    unit_len: usize,
    groups2: Vec<&mut [U]>,
    unit_len2: usize,
    units: usize,
    min_units: usize,
    f: impl Fn(Range<usize>, &mut [&mut [T]], &mut [&mut [U]]) + Sync + Send,
) {
    if units == 0 {
        return;
    }
    let chunk = chunk_units(units, 8, min_units);
    let a = split_tasks(groups, unit_len, units, chunk);
    let b = split_tasks(groups2, unit_len2, units, chunk);
    a.into_par_iter()
        .zip(b)
        .for_each(|((range, mut outs), (_, mut outs2))| f(range, &mut outs, &mut outs2));
}

#[allow(clippy::type_complexity)]
fn split_tasks<T>(
    groups: Vec<&mut [T]>,
    unit_len: usize,
    units: usize,
    chunk: usize,
) -> Vec<(Range<usize>, Vec<&mut [T]>)> {
    let n = units.div_ceil(chunk);
    let mut tasks: Vec<(Range<usize>, Vec<&mut [T]>)> = (0..n)
        .map(|i| (i * chunk..((i + 1) * chunk).min(units), Vec::new()))
        .collect();
    for g in groups {
        assert_eq!(g.len(), units * unit_len, "output group size");
        for (t, part) in tasks.iter_mut().zip(g.chunks_mut(chunk * unit_len)) {
            t.1.push(part);
        }
    }
    tasks
}

/// `y[r][b] = Σ_c t[r][c] · x[b][c]` for all rows, in parallel over rows.
/// `y` has `rows × batch` entries, `[row][batch]`.
pub fn gemm(layout: &dyn TernaryLayout, k: Kernel, x: &Acts, y: &mut [i32]) {
    let g = layout.groups();
    let units = layout.rows() / g;
    let batch = x.batch;
    assert_eq!(x.cols, layout.cols(), "{}: activation width", layout.name());
    assert_eq!(
        y.len(),
        layout.rows() * batch,
        "{}: output size",
        layout.name()
    );
    // Below ~256K multiply-adds a task costs more to hand out than to run.
    let min_units = (1 << 18) / (layout.cols() * batch * g).max(1);
    if g == 1 {
        let chunk = chunk_units(units, layout.unit_align(), min_units);
        if chunk >= units || rayon::current_num_threads() == 1 {
            layout.gemm_block(k, x, 0..units, &mut [y]);
        } else {
            y.par_chunks_mut(chunk * batch)
                .enumerate()
                .for_each(|(i, out)| {
                    let range = i * chunk..((i + 1) * chunk).min(units);
                    layout.gemm_block(k, x, range, &mut [out]);
                });
        }
    } else {
        let groups: Vec<&mut [i32]> = y.chunks_mut(units * batch).collect();
        for_each_unit_chunk(groups, batch, units, min_units, |range, outs| {
            layout.gemm_block(k, x, range, outs)
        });
    }
}

/// Several products of the same activations, as one parallel region: the work of all
/// matrices is cut into tasks together, so small matrices (k, v) do not leave a thread idle
/// and the pool is entered once (q/k/v and gate/up in the forward pass).
pub fn gemm_multi(layouts: &[&dyn TernaryLayout], k: Kernel, x: &Acts, outs: &mut [&mut [i32]]) {
    assert_eq!(layouts.len(), outs.len());
    let batch = x.batch;
    let threads = rayon::current_num_threads();
    if threads == 1 {
        for (l, y) in layouts.iter().zip(outs.iter_mut()) {
            gemm(*l, k, x, y);
        }
        return;
    }
    let total: usize = layouts.iter().map(|l| l.rows() * l.cols()).sum();
    // About four tasks per thread over all matrices, at least ~256K multiply-adds each.
    let target = (total / (threads * 4)).max(1 << 18 / batch.max(1));
    let mut tasks: Vec<(usize, Range<usize>, Vec<&mut [i32]>)> = Vec::new();
    for (li, (l, y)) in layouts.iter().zip(outs.iter_mut()).enumerate() {
        assert_eq!(x.cols, l.cols(), "{}: activation width", l.name());
        assert_eq!(y.len(), l.rows() * batch, "{}: output size", l.name());
        let g = l.groups();
        let units = l.rows() / g;
        let per_unit = l.cols() * g;
        let align = l.unit_align();
        let chunk = (target / per_unit).max(align).div_ceil(align) * align;
        let mut groups: Vec<std::slice::ChunksMut<'_, i32>> = y
            .chunks_mut(units * batch)
            .map(|gs| gs.chunks_mut(chunk * batch))
            .collect();
        let mut start = 0;
        while start < units {
            let end = (start + chunk).min(units);
            let parts: Vec<&mut [i32]> = groups
                .iter_mut()
                .map(|it| it.next().expect("chunk"))
                .collect();
            tasks.push((li, start..end, parts));
            start = end;
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(li, range, mut parts)| layouts[li].gemm_block(k, x, range, &mut parts));
}
