//! A line diff of two texts, printed like `diff -u` (hunks with two lines of context), for
//! showing what `ssh-config --write` changed. Pure.

use std::fmt::Write as _;

/// Lines of context around each change.
const CONTEXT: usize = 2;
/// Above this many cells (changed lines before × after) the diff is summarised instead: the
/// table would take more than 16 MB (a rewrite of thousands of Host blocks).
const MAX_CELLS: usize = 4_000_000;

/// The changes from `old` to `new` as unified-diff hunks; empty when they are equal.
pub(crate) fn unified(old: &str, new: &str, label: &str) -> String {
    if old == new {
        return String::new();
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out = format!("--- {label}\n+++ {label}\n");
    if ma.len().saturating_mul(mb.len()) > MAX_CELLS {
        let _ = writeln!(
            out,
            "@@ lines {}-{}: {} lines replaced by {} @@",
            prefix + 1,
            prefix + ma.len(),
            ma.len(),
            mb.len()
        );
        return out;
    }
    // Edit script over the whole texts: the common prefix and suffix are kept lines.
    let mut ops: Vec<Op> = vec![Op::Keep; prefix];
    ops.extend(lcs_ops(ma, mb));
    ops.extend(std::iter::repeat_n(Op::Keep, suffix));
    write_hunks(&mut out, &ops, &a, &b);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// The edit script from `a` to `b` along a longest common subsequence.
fn lcs_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    // len[i][j]: LCS length of a[i..] and b[j..].
    let mut len = vec![0u32; (n + 1) * (m + 1)];
    let idx = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[idx(i, j)] =
                if a[i] == b[j] { len[idx(i + 1, j + 1)] + 1 } else { len[idx(i + 1, j)].max(len[idx(i, j + 1)]) };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep);
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || len[idx(i + 1, j)] >= len[idx(i, j + 1)]) {
            // Removals first on a tie, as diff -u prints them.
            ops.push(Op::Remove);
            i += 1;
        } else {
            ops.push(Op::Add);
            j += 1;
        }
    }
    ops
}

fn write_hunks(out: &mut String, ops: &[Op], a: &[&str], b: &[&str]) {
    // Positions in a and b before each op.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0, 0);
    for op in ops {
        pos.push((i, j));
        match op {
            Op::Keep => (i, j) = (i + 1, j + 1),
            Op::Remove => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Keep).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (a0, b0) = pos[start];
        let count = |want: Op| ops[start..end].iter().filter(|&&o| o == Op::Keep || o == want).count();
        let _ = writeln!(out, "@@ -{},{} +{},{} @@", a0 + 1, count(Op::Remove), b0 + 1, count(Op::Add));
        for (op, (i, j)) in ops[start..end].iter().zip(&pos[start..end]) {
            let _ = match op {
                Op::Keep => writeln!(out, " {}", a[*i]),
                Op::Remove => writeln!(out, "-{}", a[*i]),
                Op::Add => writeln!(out, "+{}", b[*j]),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = "a\nb\nC\nd\ne\nf\ng\nh\ni\nj\n";
        assert_eq!(
            unified(old, new, "cfg"),
            "--- cfg\n+++ cfg\n@@ -1,5 +1,5 @@\n a\n b\n-c\n+C\n d\n e\n@@ -8,2 +8,3 @@\n h\n i\n+j\n"
        );
        assert_eq!(unified(old, old, "cfg"), "");
        assert_eq!(unified("", "x\n", "f"), "--- f\n+++ f\n@@ -1,0 +1,1 @@\n+x\n");
    }

    #[test]
    fn huge_rewrites_are_summarised() {
        let old: String = (0..3000).map(|n| format!("old {n}\n")).collect();
        let new: String = (0..3000).map(|n| format!("new {n}\n")).collect();
        assert_eq!(unified(&old, &new, "f"), "--- f\n+++ f\n@@ lines 1-3000: 3000 lines replaced by 3000 @@\n");
    }
}
